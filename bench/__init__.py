"""The benchmarks: the proxy against a direct charger-to-CSMS connection, in one command.

``make bench`` (``.venv/bin/python -m bench``) starts a nats-server, a fast echo CSMS and
the stack (``oye relay``, ``oye inject-api``, ``oye logger``) as real processes, drives
simulated chargers from load-generator processes, and prints a table; the JSON lands in
``bench/results/``. ``docs/PERFORMANCE.md`` has the method and the figures.

Modules: :mod:`bench.cli` (the command), :mod:`bench.stack` (the processes),
:mod:`bench.csms` and :mod:`bench.loadgen` (the programs the harness runs),
:mod:`bench.workers` (driving load generators), :mod:`bench.scenarios` (what is measured),
and the pure parts: :mod:`bench.stats`, :mod:`bench.report`, :mod:`bench.baseline`,
:mod:`bench.http`, :mod:`bench.profile`.
"""
