"""pytest fixtures of the chart tests; they live in chart_helpers (a module name
no other test directory uses, so one pytest run can collect every suite)."""

from chart_helpers import chart, helm, render, render_error  # noqa: F401
