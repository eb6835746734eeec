"""The engine: the ``Zart`` facade (``_app``), the execution runner (``_runner``), the
lease heartbeat (``_leases``), workers (``_worker``), admin operations (``_admin``)
and the public views of records (``_info``). It knows the execution model below it
and the storage layer; nothing below imports it."""
