"""The durable-function model: steps and their names, durable functions, retries,
failures, the journal of one run (``_journal``) and the durable primitives. It knows
storage records and the journal store; it does not know the engine that drives it
(``run_child`` reaches that through the ``ChildRunner`` protocol)."""
