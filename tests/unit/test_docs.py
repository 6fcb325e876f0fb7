from handoff.settings import APP_ROOT, Settings


def test_every_setting_is_documented():
    text = (APP_ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.env_names() if name not in text]
    assert missing == []


def test_readme_starts_with_the_two_commands():
    text = (APP_ROOT / "README.md").read_text()
    assert text.index("make run") < text.index("make test") < text.index("curl")
