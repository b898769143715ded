"""UWS 1.1 (Universal Worker Service): job model, XML documents, rules and execution; no HTTP."""
