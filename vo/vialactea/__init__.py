"""The ViaLactea visual-analytics client's output rules, over the standard services.

``sia`` (the SIA answer the client parses: overlap codes, Galactic polygons as text, merge
rows), ``tsv`` (TAP TSV rows safe for a whitespace split) and ``accounts`` (the optional
HTTP Basic accounts of its TAP base). No HTTP here; ``app/routers/vialactea.py`` mounts them.
The contract is ``shared/vialactea-client.md``; ``docs/vialactea.md`` is the user's guide.
"""
