"""What the README's demo set-up command installs: the project's dependencies plus the extra it names."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def demo_install() -> tuple[list[str], dict[str, str]]:
    """(distribution names, hubscan's console scripts) of `pip install -e ".[extra]"` in README."""
    import tomllib  # Python 3.11+, like the tests that need it

    readme = (ROOT / "README.md").read_text()
    (command,) = [line for line in readme.splitlines() if line.endswith("hubscan demo")]
    extra = re.search(r'-e "\.\[(\w+)\]"', command)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *(project["optional-dependencies"][extra[1]] if extra else [])]
    return [re.split(r"[<>=\[ ;]", d, maxsplit=1)[0] for d in wanted], project["scripts"]
