#!/usr/bin/env python
"""Write validation/notebooks/synthetic.ipynb (nbformat 4 JSON, not executed).

The notebook only loads the committed results (validation/results/0[1-3]_*/) and calls the
scripts' own ``plot`` functions, so every number and figure comes from the scripts.

    python validation/notebooks/make_synthetic_notebook.py
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def md(text):
    return dict(cell_type="markdown", metadata={}, source=text.strip("\n").splitlines(True))


def code(text):
    return dict(cell_type="code", metadata={}, execution_count=None, outputs=[],
                source=text.strip("\n").splitlines(True))


CELLS = [
    md("""
# Synthetic validation of cloudcov (LPI paper sec. 4)

Loads the committed outputs of `validation/scripts/01_two_filaments.py`,
`02_filament_height.py` and `03_crowded_field.py` (folders under `validation/results/`) and
redraws their figures with the scripts' own `plot` functions. To regenerate the data, run the
scripts (see `validation/RESULTS.md` for commands and run times); pass
`--out DIR` to the scripts and set `RESULTS` below to look at another run.
"""),
    code("""
import importlib, json, sys
from pathlib import Path
from IPython.display import Image, display

REPO = Path.cwd().resolve()
while not (REPO / "validation" / "scripts").is_dir() and REPO != REPO.parent:
    REPO = REPO.parent
sys.path.insert(0, str(REPO / "validation" / "scripts"))
RESULTS = REPO / "validation" / "results"
two = importlib.import_module("01_two_filaments")
height = importlib.import_module("02_filament_height")
crowd = importlib.import_module("03_crowded_field")

def load(name):
    return json.loads((RESULTS / name / "results.json").read_text())
"""),
    md("""
## 1. Two filaments (sec. 4.1, Figs. 5-6)

Target (TARGETS.md): LPI Z IQR/1.349 within 0.9-1.15 in every position bin; no bin mean
beyond 1 sigma.
"""),
    code("""
r1 = load("01_two_filaments")
t = r1["target"]
print(json.dumps({k: t[k] for k in t if k != "near_filaments"}, indent=1))
print("near filaments:", {k: (round(v["mean"], 3), round(v["iqr_sigma"], 3))
                          for k, v in t["near_filaments"].items()})
for b in r1["bins"]:
    print(f"{b['centre']:+7.1f} n={b['lpi']['n']:4d}  conv mean {b['conventional']['mean']:+6.2f} "
          f"IQR/1.349 {b['conventional']['iqr_sigma']:5.2f} | LPI mean {b['lpi']['mean']:+6.2f} "
          f"IQR/1.349 {b['lpi']['iqr_sigma']:5.2f}")
"""),
    code("""
two.plot(RESULTS / "01_two_filaments")
display(Image(str(RESULTS / "01_two_filaments" / "fig6_two_filaments.png")))
display(Image(str(RESULTS / "01_two_filaments" / "fig5_stamps.png")))
"""),
    md("""
## 2. Filament height vs SNR and sample aspect ratio (sec. 4.2, Fig. 7)

Paper: > 80% of the height reconstructed at SNR ~1.4 with 2^14 samples, aspect ratio 0.
"""),
    code("""
r2 = load("02_filament_height")
print(r2["summary"])
for v, entries in r2["results"].items():
    for k, e in entries.items():
        print(v, k, [round(f, 3) for f in e["fraction"]])
height.plot(RESULTS / "02_filament_height")
display(Image(str(RESULTS / "02_filament_height" / "fig7_filament_height.png")))
"""),
    md("""
## 3. Crowded synthetic field (sec. 4.3, Fig. 8 left)

Target: LPI median Z within +-0.1.
"""),
    code("""
r3 = load("03_crowded_field")
print(json.dumps(r3["stats"], indent=1))
print(r3["target"])
crowd.plot(RESULTS / "03_crowded_field")
display(Image(str(RESULTS / "03_crowded_field" / "fig8_crowded_field.png")))
"""),
]

NB = dict(cells=CELLS, metadata=dict(
    kernelspec=dict(display_name="Python 3", language="python", name="python3"),
    language_info=dict(name="python")), nbformat=4, nbformat_minor=5)


def main():
    for i, c in enumerate(NB["cells"]):
        c["id"] = f"cell-{i:02d}"
    (HERE / "synthetic.ipynb").write_text(json.dumps(NB, indent=1) + "\n")
    print(f"wrote {HERE / 'synthetic.ipynb'}")


if __name__ == "__main__":
    main()
