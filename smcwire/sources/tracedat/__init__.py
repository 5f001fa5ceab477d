"""trace-cmd's binary ``trace.dat`` (file format versions 6 and 7), read natively.

- ``schema``: the file's binary layouts as Construct schemas (initial format, sections, options,
  metadata, compressed blocks and chunks), and Construct structs made from field tables;
- ``formats``: the text the file embeds (``header_page``, ``header_event``, event ``format``
  files into field tables; saved command lines; kallsyms);
- ``file``: ``TraceDat``, the file opened: headers, options, metadata, CPU data page by page;
- ``records``: pages into records and records into events (the fast path, derived from the formats);
- ``reader``: the CPUs merged as ``trace-cmd report`` merges them, events and line accounting;
- ``writer``: trace.dat files built from the same schemas, for tests and benchmarks.

Nothing here is imported until a file starts with trace.dat's magic (``io.is_tracedat``).
"""
