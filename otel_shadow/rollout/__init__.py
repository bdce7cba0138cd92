"""From shadow to rollout: verdict-gated ramps of the rules file (plan, ramp) and alerts.

The rollout layer reads the store and the analysis, and writes the rules file the application
watches; it never imports the SDK (core, instrumentation) or the collector: the CLI hands it the
rules parser (docs/rollout.md).
"""
