"""One configuration source: `settings.py` alone reads the environment, run.sh only delegates."""

import ast
from pathlib import Path

import pytest

from e2a_assets.domain.policies import PolicyError

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
        "E2A_TENANTS_FILE": str(PROJECT_ROOT / "policies" / "tenants.yaml"),
        "E2A_INVOICE_DIR": str(tmp_path / "shared" / "invoices"),
        "USER": "ana",
    })
    assert settings.dagster_home == (tmp_path / "home").resolve()
    assert settings.dagster_postgres_url == "postgresql+psycopg2://dagster:pw@db:5432/dagster"
    assert settings.dagster_yaml == PROJECT_ROOT / "dagster.postgres.yaml"
    assert settings.operator == "ana"
    assert settings.env_names == {"database_url": "DATABASE_URL", "tenants_file": "E2A_TENANTS_FILE"}
    assert settings.invoice_dir == (tmp_path / "shared" / "invoices").resolve()
    environment = settings.dagster_environment()
    assert environment["E2A_DAGSTER_POSTGRES_URL"] == settings.dagster_postgres_url
    # The parts dagster.postgres.yaml builds its psycopg2 URL from, for plain `dagster` commands.
    assert {k: v for k, v in environment.items() if k.startswith("E2A_DAGSTER_PG_")} == {
        "E2A_DAGSTER_PG_HOST": "db", "E2A_DAGSTER_PG_PORT": "5432", "E2A_DAGSTER_PG_USER": "dagster",
        "E2A_DAGSTER_PG_PASSWORD": "pw", "E2A_DAGSTER_PG_DB": "dagster"}
    assert environment["E2A_INVOICE_DIR"] == str(settings.invoice_dir)
    assert settings.child_environment()["USER"] == "ana"
    custom = Settings.from_env({"E2A_DATA_DIR": str(tmp_path), "E2A_DAGSTER_YAML": str(tmp_path / "mine.yaml")})
    assert custom.dagster_yaml == (tmp_path / "mine.yaml").resolve()


def test_the_instance_url_can_be_given_in_parts(tmp_path):
    settings = Settings.from_env({"E2A_DATA_DIR": str(tmp_path), "E2A_DAGSTER_PG_HOST": "db", "E2A_DAGSTER_PG_USER": "d",
                                  "E2A_DAGSTER_PG_DB": "dagster", "DATABASE_URL": "postgresql://e2a@db/w",
                                  "E2A_TENANTS_FILE": "/etc/e2a/tenants.yaml", "E2A_INVOICE_DIR": "/srv/invoices"})
    assert settings.dagster_postgres_url == "postgresql+psycopg2://d@db:5432/dagster"


@pytest.mark.parametrize("setting, why", [
    ({"E2A_ENV": "production"}, "E2A_ENV=production"),
    ({"E2A_DAGSTER_POSTGRES_URL": "postgresql://d@db/dagster"}, "a Postgres Dagster instance"),
    ({"E2A_EXECUTOR": "celery"}, "the Celery executor or run launcher"),
    ({"E2A_RUN_LAUNCHER": "celery"}, "the Celery executor or run launcher"),
])
def test_outside_the_embedded_default_nothing_falls_back_to_local_files(tmp_path, setting, why):
    base = {"E2A_DATA_DIR": str(tmp_path), **setting}
    with pytest.raises(PolicyError) as refused:
        Settings.from_env(base)
    assert str(refused.value) == (f"{why} needs explicit settings, missing: DATABASE_URL, E2A_TENANTS_FILE, "
                                  "E2A_INVOICE_DIR (no local fallback; see docs/deployment.md)")
    with pytest.raises(PolicyError, match=r"missing: E2A_INVOICE_DIR \("):
        Settings.from_env({**base, "DATABASE_URL": "postgresql://e2a@db/w", "E2A_TENANTS_FILE": "/etc/t.yaml"})
    explicit = Settings.from_env({**base, "DATABASE_URL": "postgresql://e2a@db/w", "E2A_TENANTS_FILE": "/etc/t.yaml",
                                  "E2A_INVOICE_DIR": "/srv/invoices"})
    assert explicit.invoice_dir == Path("/srv/invoices") and explicit.tenants_file == Path("/etc/t.yaml")


def test_an_instance_config_on_postgres_counts_as_not_embedded(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("storage:\n  postgres:\n    postgres_url: postgresql+psycopg2://d@db/x\n")
    with pytest.raises(PolicyError, match="^a Postgres Dagster instance needs explicit settings, missing: DATABASE_URL"):
        Settings.from_env({"E2A_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(home)})


def test_executor_and_run_launcher_are_settings(tmp_path):
    settings = Settings.from_env({"E2A_DATA_DIR": str(tmp_path)})
    assert (settings.executor, settings.run_launcher) == ("in_process", "default")
    assert (settings.celery_broker, settings.celery_backend, settings.celery_queue) == \
        ("pyamqp://guest@localhost:5672//", "rpc://", "dagster")
    assert Settings.from_env({"E2A_DATA_DIR": str(tmp_path), "E2A_EXECUTOR": "multiprocess"}).executor == "multiprocess"
    with pytest.raises(PolicyError) as refused:
        Settings.from_env({"E2A_DATA_DIR": str(tmp_path), "E2A_EXECUTOR": "dask"})
    assert str(refused.value) == "environment variable E2A_EXECUTOR='dask' is not one of in_process, multiprocess, celery"
    celery = Settings.from_env({"E2A_DATA_DIR": str(tmp_path), "E2A_EXECUTOR": "celery", "DATABASE_URL": "sqlite:///w",
                                "E2A_TENANTS_FILE": "/t.yaml", "E2A_INVOICE_DIR": "/i", "E2A_CELERY_QUEUE": "e2a-x",
                                "E2A_CELERY_BROKER": "redis://127.0.0.1:6379/0"})
    assert {k: v for k, v in celery.dagster_environment().items() if k.startswith("E2A_CELERY") or k == "E2A_EXECUTOR"} == {
        "E2A_EXECUTOR": "celery", "E2A_CELERY_BROKER": "redis://127.0.0.1:6379/0", "E2A_CELERY_BACKEND": "rpc://",
        "E2A_CELERY_QUEUE": "e2a-x"}


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
