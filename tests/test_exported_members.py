"""The public API is exactly what ``otel_shadow.__all__`` lists (nothing leaks, nothing is forgotten)."""

import otel_shadow


def test_all_lists_the_public_names() -> None:
    public = {
        name
        for name, value in vars(otel_shadow).items()
        if not name.startswith("_")
        and not hasattr(value, "__path__")
        and not getattr(value, "__name__", "").startswith("otel_shadow.")
    }
    assert set(otel_shadow.__all__) - {"__version__"} == public - {"annotations"}
    for name in otel_shadow.__all__:
        assert hasattr(otel_shadow, name)
