"""One configuration source: `settings.py` alone reads the environment, run.sh only delegates."""

import ast
from pathlib import Path

from e2a_assets.settings import PROJECT_ROOT, Settings, shown_database_url

PACKAGE = PROJECT_ROOT / "e2a_assets"


def test_defaults_without_any_environment(tmp_path):
    settings = Settings.from_env({"E2A_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/warehouse.sqlite"
    assert settings.dagster_home == tmp_path.resolve() / "dagster_home"
    assert settings.dagster_yaml == PROJECT_ROOT / "dagster.yaml"
    assert settings.dagster_postgres_url is None
    assert settings.env_names == {}
    # The Dagster processes e2a starts always learn the warehouse, even the embedded default.
    assert settings.dagster_environment() == {"DATABASE_URL": settings.database_url,
                                              "DAGSTER_HOME": str(tmp_path.resolve() / "dagster_home")}


def test_dagster_instance_variables_are_resolved_here(tmp_path):
    settings = Settings.from_env({
        "E2A_DATA_DIR": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "E2A_DAGSTER_POSTGRES_URL": "postgres://dagster:pw@db:5432/dagster",
        "DATABASE_URL": "postgresql://e2a@db/warehouse",
        "USER": "ana",
    })
    assert settings.dagster_home == (tmp_path / "home").resolve()
    assert settings.dagster_postgres_url == "postgresql+psycopg2://dagster:pw@db:5432/dagster"
    assert settings.dagster_yaml == PROJECT_ROOT / "dagster.postgres.yaml"
    assert settings.operator == "ana"
    assert settings.env_names == {"database_url": "DATABASE_URL"}
    assert settings.dagster_environment()["E2A_DAGSTER_POSTGRES_URL"] == settings.dagster_postgres_url
    assert settings.child_environment()["USER"] == "ana"
    custom = Settings.from_env({"E2A_DATA_DIR": str(tmp_path), "E2A_DAGSTER_YAML": str(tmp_path / "mine.yaml")})
    assert custom.dagster_yaml == (tmp_path / "mine.yaml").resolve()


def test_shown_database_url_hides_the_password(tmp_path):
    assert shown_database_url({"DATABASE_URL": "postgresql://e2a:s3cret@db/w"}) == "postgresql://e2a:***@db/w"
    assert shown_database_url({"E2A_DATA_DIR": str(tmp_path)}) == f"sqlite:///{tmp_path.resolve()}/warehouse.sqlite"
    assert shown_database_url({"DATABASE_URL": "not a url"}) == "(unparseable)"


def _environment_reads(path: Path) -> list[str]:
    """`os.environ` / `os.getenv` uses in a module, except writes (`os.environ.update(...)`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                isinstance(node.value, ast.Name) and node.value.id == "os":
            parent = parents.get(node)
            if isinstance(parent, ast.Attribute) and parent.attr == "update":
                continue
            found.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
        if isinstance(node, ast.ImportFrom) and node.module == "os" and \
                any(alias.name in ("environ", "getenv") for alias in node.names):
            found.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    return found


def test_only_settings_reads_the_environment():
    reads = [hit for path in sorted(PACKAGE.rglob("*.py")) if path.name != "settings.py" or path.parent != PACKAGE
             for hit in _environment_reads(path)]
    assert reads == []
    # The check itself works: settings.py does read it.
    assert _environment_reads(PACKAGE / "settings.py")


def test_run_sh_holds_no_configuration():
    script = (PROJECT_ROOT / "run.sh").read_text()
    for name in ("DAGSTER_HOME", "E2A_DAGSTER_POSTGRES_URL", "DATABASE_URL", "dagster.yaml"):
        assert name not in script, name
