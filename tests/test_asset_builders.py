"""Finding builders and reading recipe versions without importing the builder modules."""

import subprocess
import sys
import textwrap

import pytest

from ecmm.asset_builders import MissingBuilderError, accepted_arguments, load_function, recipe_version, \
    written_recipe_version


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Three modules on sys.path: a literal version, one imported from it, and a computed one."""
    (tmp_path / "ab_literal.py").write_text("RECIPE_VERSION = 7\n\ndef build(folder):\n    pass\n")
    (tmp_path / "ab_chained.py").write_text("from ab_literal import RECIPE_VERSION\n\ndef build(folder):\n    pass\n")
    (tmp_path / "ab_computed.py").write_text("RECIPE_VERSION = 3 + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("ab_literal", "ab_chained", "ab_computed"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_written_version_is_read_from_the_source_without_importing(modules):
    assert written_recipe_version("ab_literal") == 7
    assert written_recipe_version("ab_chained") == 7  # followed through the import
    assert written_recipe_version("ab_chained", hops=0) is None
    assert written_recipe_version("ab_computed") is None  # not a literal: the caller imports it
    assert written_recipe_version("no_such_module_here") is None
    assert "ab_literal" not in sys.modules and "ab_chained" not in sys.modules


def test_recipe_version_imports_only_when_it_cannot_read_the_number(modules):
    assert recipe_version("ab_chained:build") == 7 and "ab_chained" not in sys.modules
    assert recipe_version("ab_computed:build") == 4 and "ab_computed" in sys.modules
    assert recipe_version("no_such_module_here:build") is None

    def builder(folder):
        pass

    builder.RECIPE_VERSION = 5
    assert recipe_version(builder) == 5


def test_load_function_names_the_asset_and_the_missing_function(modules):
    assert load_function("ab_literal:build", "backbone").__name__ == "build"
    with pytest.raises(MissingBuilderError, match=r"'backbone' is built by ab_literal.missing"):
        load_function("ab_literal:missing", "backbone")
    with pytest.raises(MissingBuilderError, match=r"'recommender' is keyed by nowhere_module.key"):
        load_function("nowhere_module:key", "recommender", role="keyed")


def test_accepted_arguments_drop_what_the_builder_does_not_take():
    def old_builder(folder, progress):
        pass

    def new_builder(folder, progress, **options):
        pass

    arguments = {"progress": False, "source": "shop", "model": "ecmm-clip"}
    assert accepted_arguments(old_builder, arguments, "search_index", None) == {"progress": False}
    assert accepted_arguments(new_builder, arguments, "search_index", "folder shop") == arguments
    with pytest.raises(MissingBuilderError, match=r"does not take source=, model=.*for folder shop"):
        accepted_arguments(old_builder, arguments, "search_index", "folder shop")


def test_checking_the_shop_assets_imports_no_builder():
    """The search and recommendation assets' recipe versions are read without loading torch."""
    code = textwrap.dedent("""
        import sys
        from ecmm.assets import get_asset
        from ecmm.asset_builders import recipe_version
        names = ("shop_clip", "search_index", "query_encoder", "recommender", "fitted_recommender")
        versions = [recipe_version(get_asset(name).builder) for name in names]
        assert all(isinstance(v, int) for v in versions), versions
        print(sorted(name for name in ("torch", "transformers", "sklearn") if name in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
