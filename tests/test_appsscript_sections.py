"""The Apps Script side's section list (appsscript/Sections.js) is generated from
prompts/sections.yaml by scripts/gen_sections_json.py; these tests fail when the two drift,
and when the add-on's code carries a section list of its own again."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APPSSCRIPT = ROOT / "appsscript"
SCRIPT = ROOT / "scripts" / "gen_sections_json.py"
FIX = "run: .venv/bin/python scripts/gen_sections_json.py"


@pytest.fixture(scope="module")
def gen():
    """scripts/gen_sections_json.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_sections_json", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def yaml_sections(prompts_dir: Path) -> list[dict[str, str]]:
    """Names and labels read straight from sections.yaml, without the generator's code."""
    raw = yaml.safe_load((prompts_dir / "sections.yaml").read_text(encoding="utf-8"))
    return [{"name": name, "label": body.get("label", name.replace("_", " ").capitalize())}
            for name, body in raw.items()]


def test_sections_js_is_what_the_generator_writes(gen):
    current = (APPSSCRIPT / "Sections.js").read_text(encoding="utf-8")
    wanted = gen.render(gen.section_list(ROOT / "prompts"))
    assert current == wanted, f"appsscript/Sections.js is out of date with sections.yaml; {FIX}"


def test_sections_js_lists_every_section_of_sections_yaml_in_order(gen):
    listed = gen.parse((APPSSCRIPT / "Sections.js").read_text(encoding="utf-8"))
    assert listed == yaml_sections(ROOT / "prompts"), FIX
    assert all(s["label"].strip() for s in listed)


def test_check_mode_passes_now_and_fails_after_a_relabel(tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    out = tmp_path / "Sections.js"
    shutil.copyfile(APPSSCRIPT / "Sections.js", out)

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT), "--check", "--prompts", str(prompts), "--out", str(out)],
            capture_output=True, text=True, timeout=60, check=False)

    assert check().returncode == 0
    text = (prompts / "sections.yaml").read_text(encoding="utf-8")
    relabelled = text.replace("label: Data we need", "label: Data we ask for")
    assert relabelled != text, "the test expects the data section's label in sections.yaml"
    (prompts / "sections.yaml").write_text(relabelled, encoding="utf-8")
    failed = check()
    assert failed.returncode == 1
    assert "out of date" in failed.stderr and "gen_sections_json.py" in failed.stderr

    # Without --check it rewrites the file, after which the check passes again.
    subprocess.run([sys.executable, str(SCRIPT), "--prompts", str(prompts), "--out", str(out)],
                   capture_output=True, text=True, timeout=60, check=True)
    assert '{"name": "data", "label": "Data we ask for"}' in out.read_text(encoding="utf-8")
    assert check().returncode == 0


def test_the_add_on_has_no_section_list_of_its_own():
    """Only Sections.js names the sections: a second list in the code or the pages would
    drift from sections.yaml again (as the old BUILTIN_SECTIONS did)."""
    names = [s["name"] for s in yaml_sections(ROOT / "prompts")]
    literal = re.compile(r"""(['"])(""" + "|".join(map(re.escape, names)) + r""")\1""")
    offenders = []
    for path in sorted(APPSSCRIPT.glob("*.js")) + sorted(APPSSCRIPT.glob("*.html")):
        if path.name == "Sections.js":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if literal.search(line):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders, "section names written into the add-on's code:\n" + "\n".join(offenders)


def test_clasp_pushes_sections_js():
    """clasp pushes the top-level .js/.gs and .html files and the manifest, minus what
    .claspignore lists: Sections.js must be one of them."""
    ignored = [line.strip() for line in (APPSSCRIPT / ".claspignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert not any(Path("Sections.js").match(pattern) for pattern in ignored), ignored
