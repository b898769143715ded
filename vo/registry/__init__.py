"""IVOA Registry publishing: VOResource records of the site (``resources``), their assembly from
the data (``site``), record dates (``datestamps``) and the OAI-PMH protocol (``oai``)."""
