"""The conda environments pin exactly what requirements.txt pins."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def read_pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        assert version, f"requirement {line!r} is not pinned with =="
        pins[name.strip().lower()] = version.strip()
    return pins


def test_every_conda_pin_equals_requirements():
    requirements = read_pins((REPO / "requirements.txt").read_text().splitlines())
    env_files = sorted((REPO / "envs").glob("*.yaml"))
    assert env_files, "no conda environments under envs/"
    for env_file in env_files:
        spec = yaml.safe_load(env_file.read_text())
        pip_sections = [entry["pip"] for entry in spec["dependencies"] if isinstance(entry, dict) and "pip" in entry]
        assert pip_sections, f"{env_file.name}: no pip section"
        pins = read_pins(pip_sections[0])
        for name, version in pins.items():
            assert name in requirements, f"{env_file.name}: {name} is not in requirements.txt"
            assert version == requirements[name], (
                f"{env_file.name}: {name}=={version}, requirements.txt has {requirements[name]}"
            )
        assert "python=3.11" in spec["dependencies"], f"{env_file.name}: python is not pinned to 3.11"


def test_rules_name_existing_environments():
    for rules in (REPO / "workflow" / "rules").glob("*.smk"):
        for line in rules.read_text().splitlines():
            if line.strip().startswith('"../../envs/'):
                assert (REPO / "workflow" / "rules" / line.strip().strip('",')).resolve().exists(), (
                    f"{rules.name}: {line.strip()}"
                )
