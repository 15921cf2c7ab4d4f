import re
import subprocess
import sys
import types

from reconciler import deferred


def test_a_deferred_pattern_compiles_at_first_use_and_takes_its_name() -> None:
    module = types.ModuleType("reconciler_test_deferred")
    sys.modules[module.__name__] = module
    try:
        module.WORD = deferred.pattern(module.__name__, "WORD", r"w(or)d", re.IGNORECASE)
        assert not isinstance(module.WORD, re.Pattern)
        stand_in = module.WORD
        assert stand_in.fullmatch("WORD") is not None  # first use: compiled, put in place
        assert isinstance(module.WORD, re.Pattern)
        assert module.WORD.pattern == r"w(or)d"
        assert module.WORD.flags & re.IGNORECASE
        assert module.WORD.sub("x", "a word") == "a x"
        # A copy kept elsewhere still works: it compiles through re's cache.
        assert stand_in.search("no") is None
    finally:
        del sys.modules[module.__name__]


def test_a_pattern_without_flags_is_compiled_as_re_would_and_shown_before_its_use() -> None:
    module = types.ModuleType("reconciler_test_deferred_plain")
    sys.modules[module.__name__] = module
    try:
        module.PLAIN = deferred.pattern(module.__name__, "PLAIN", r"a.b")
        # Shown (in a log or a debugger) by its source, and showing it is no use of it.
        assert repr(module.PLAIN) == "deferred('a.b')"
        assert not isinstance(module.PLAIN, re.Pattern)
        assert module.PLAIN.fullmatch("A-B") is None  # case matters, as for re.compile
        assert module.PLAIN.flags == re.compile(r"a.b").flags
    finally:
        del sys.modules[module.__name__]


def test_importing_the_modules_compiles_none_of_their_patterns() -> None:
    # What each start would pay for checks a run may never make (a parameter form, a
    # custom domain, a marker): `reconciler.deferred` compiles each at its first use.
    names = {
        "reconciler.rendering_params": ["_INTEGER", "_NUMBER", "_HEX_COLOR", "_INTERVAL", "_RATIO"],
        "reconciler.specs": ["_CONTROL", "_DOMAIN"],
        "reconciler.loader": ["_LINE_BREAKS", "_FLOW_OPENER", "_FLOW_BRACKET"],
        "reconciler.marker": ["_MARKER", "_TOKEN"],
        "reconciler.client": ["_HEADER_SAFE", "_SOURCE_ID"],
        "reconciler.emulator.store": ["API_KEY_PATTERN", "SOURCE_ID"],
        "reconciler.render.markdown": ["_DIGEST"],
        "reconciler.github": ["DIGEST_LINE", "ACCOUNT_NAME"],
        "reconciler.untrusted": ["_RAW_AFTER_JSON", "_UNSAFE", "_CONTROL", "_COMMAND_START"],
    }
    probe = (
        "import importlib, re\n"
        f"names = {names!r}\n"
        "modules = {name: importlib.import_module(name) for name in names}\n"
        "for name, patterns in names.items():\n"
        "    for pattern in patterns:\n"
        "        if isinstance(getattr(modules[name], pattern), re.Pattern):\n"
        "            print(name, pattern)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == ""
