"""The repository's text (code, comments, configs, docs) cites the paper and docs/ files only, and describes
the project as it is: no references to documents outside the repository, no account of how the work went
(results are labelled by run id, command and commit)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".cfg", ".toml", ".txt", ".sh", ".sbatch", ""}
SKIP_DIRS = {".git", ".venv", "data", "outputs", "weights", "__pycache__"}

# pattern -> why it is refused
BANNED = {
    r"\b(SPEC|DESIGN)\s*§": "cites a document the repository does not hold (cite the paper or docs/)",
    r"\b(SPEC|DESIGN)\.md\b|\.\./shared\b|/work/shared\b": "names a document outside the repository",
    r"\bcpu-session\d|\b(work|working|development|coding) sessions?\b": "narrates sessions of work",
    r"\brounds? of (work|development)\b|\b(development|work) round\b": "narrates rounds of work",
    r"\bthis brief\b|\bthe brief\b": "narrates how the work was assigned",
}


def text_files(root: Path) -> list[Path]:
    """The tracked text files (all text files under ``root`` outside SKIP_DIRS when git is unavailable)."""
    try:
        names = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True,
                               timeout=60).stdout.splitlines()
        files = [root / n for n in names]
    except (OSError, subprocess.SubprocessError):
        files = [p for p in root.rglob("*") if not SKIP_DIRS & set(p.relative_to(root).parts)]
    return [f for f in files if f.is_file() and f.suffix in TEXT_SUFFIXES and f.stat().st_size < 2_000_000]


def findings(files: list[Path], root: Path) -> list[str]:
    out = []
    for f in files:
        if f.resolve() == Path(__file__).resolve():
            continue
        try:
            text = f.read_text()
        except UnicodeDecodeError:
            continue
        for pattern, why in BANNED.items():
            for m in re.finditer(pattern, text, flags=re.IGNORECASE):
                line = text.count("\n", 0, m.start()) + 1
                out.append(f"{f.relative_to(root)}:{line}: {m.group(0)!r}: {why}")
    return out


def test_no_outside_citations_nor_narration_of_the_work():
    files = text_files(ROOT)
    assert any(f.name == "README.md" for f in files) and any(f.suffix == ".yaml" for f in files)
    assert findings(files, ROOT) == []


def test_the_scan_finds_planted_text(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("fine\nsee SPEC \u00a74 for the loss\n")
    (tmp_path / "b.yaml").write_text("run_id: cpu-session2   # from the second work session\n")
    got = findings([tmp_path / "docs" / "a.md", tmp_path / "b.yaml"], tmp_path)
    assert [g.split(": ")[0] for g in got] == ["docs/a.md:2", "b.yaml:1", "b.yaml:1"]
