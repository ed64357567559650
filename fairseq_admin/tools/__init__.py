"""The tools around the plugin: the ``fairseq-admin`` command (cli), recipes (recipe), data download and
preparation (datasets, prepare), scoring (score), checkpoint averaging and folding (average, fold),
diagnostics and plots. fairseq never imports this package: ``--user-dir`` loads only the plugin
(fairseq_admin: model, layers, task, optimizer, profiling). Library code here logs; the CLI prints.
"""
