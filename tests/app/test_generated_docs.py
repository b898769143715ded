"""Generated docs (configuration, data model) must not drift from the code they come from."""

from pathlib import Path

from app.settings import Settings, settings_markdown


def test_configuration_doc_is_current() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert doc.read_text() == settings_markdown(), "run `vlkb config-doc > docs/configuration.md`"


def test_every_setting_is_described() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description and len(field.description) > 20, name


def test_data_model_doc_is_current() -> None:
    from schemas import schemas_markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "data-model.md"
    assert doc.read_text() == schemas_markdown(), "run `vlkb schema-doc > docs/data-model.md`"
