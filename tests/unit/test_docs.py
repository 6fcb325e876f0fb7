from handoff.settings import APP_ROOT, Settings


def test_every_setting_is_documented():
    text = (APP_ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.env_names() if name not in text]
    assert missing == []


def test_readme_starts_with_the_two_commands():
    text = (APP_ROOT / "README.md").read_text()
    assert text.index("make run") < text.index("make test") < text.index("curl")


def test_every_path_in_the_architecture_tables_exists():
    """docs/architecture.md's layer and "where does X live" tables name real files and folders."""
    import re

    text = (APP_ROOT / "docs" / "architecture.md").read_text()
    paths = set(re.findall(r"`((?:handoff|tests|devserver)/[\w/.]*|function_app\.py)`", text))
    assert len(paths) > 30
    missing = sorted(p for p in paths if not (APP_ROOT / p).exists())
    assert missing == []


def test_every_service_module_is_placed_in_the_where_table():
    """A new use-case module is added to the "where does X live" table (or its package is)."""
    text = (APP_ROOT / "docs" / "architecture.md").read_text()
    services = APP_ROOT / "handoff" / "services"
    unplaced = [
        p.name
        for p in services.iterdir()
        if p.name not in ("__init__.py", "__pycache__")
        and f"handoff/services/{p.name}" not in text
        and f"handoff/services/{p.name}/" not in text
    ]
    assert unplaced == []
