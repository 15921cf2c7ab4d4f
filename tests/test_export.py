from ruamel.yaml import YAML

from reconciler.export import export_document, export_yaml
from reconciler.live import LiveSource
from reconciler.specs import DesiredState

BLOG = LiveSource(
    id="a" * 24,
    name="Blog",
    deployment={
        "type": "webfolder",
        "webfolder_base_url": "https://assets.example.com/",
        "imgix_subdomains": ["acme-blog"],
        "cache_ttl_value": 86400,
        "cache_ttl_error": 300,
        "password_encrypted": "opaque",
        "annotation": "New deployment created for source by dashboard",
        "default_params": {"auto": "format"},
        "some_future_attribute": True,
    },
)
ARCHIVE = LiveSource(
    id="b" * 24,
    name="Blog",
    enabled=False,
    deployment={
        "type": "s3",
        "s3_bucket": "b",
        "s3_access_key": "AKIA",
        "imgix_subdomains": ["acme-archive"],
    },
)


def test_export_omits_defaults_annotation_and_unknown_attributes() -> None:
    (blog, archive) = export_document([BLOG, ARCHIVE])["sources"]
    assert blog["deployment"] == {
        "type": "webfolder",
        "cache_ttl_value": 86400,
        "default_params": {"auto": "format"},
        "imgix_subdomains": ["acme-blog"],
        "webfolder_base_url": "https://assets.example.com/",
        "password": {"env": "BLOG_PASSWORD"},
    }
    assert archive["enabled"] is False


def test_secret_variable_names_are_unique_per_source() -> None:
    twin = BLOG.model_copy(update={"id": "c" * 24})
    names = [s["deployment"]["password"]["env"] for s in export_document([BLOG, twin])["sources"]]
    assert names == ["BLOG_PASSWORD", "BLOG_CCCCCC_PASSWORD"]


def test_exported_file_is_a_valid_desired_state() -> None:
    text = export_yaml([BLOG, ARCHIVE])
    assert text.startswith("# yaml-language-server: $schema=")
    state = DesiredState.model_validate(YAML(typ="safe").load(text))
    assert [s.id for s in state.sources] == ["a" * 24, "b" * 24]
