"""Validate VOSI/TAPRegExt/UWS documents against the IVOA XML schemas shipped inside STILTS.

The schemas come from the ``stilts`` Debian package's jar (the copies taplint itself uses),
so the test suite needs no network; an lxml resolver maps each schema URL to its local copy.
"""

from __future__ import annotations

import zipfile
from functools import cache
from pathlib import Path

from lxml import etree

JARS = [Path("/usr/share/java/starlink-ttools.jar")]
_PREFIX = "uk/ac/starlink/ttools/taplint/"
VENDORED = Path(__file__).resolve().parent.parent / "vo" / "xsd"

# namespace or schemaLocation URL -> file in the jar
_BY_URL = {
    "http://www.ivoa.net/xml/VOResource/v1.0": "VOResource-v1.1.xsd",
    "http://www.ivoa.net/xml/VOResource/VOResource-v1.0.xsd": "VOResource-v1.1.xsd",
    "http://www.ivoa.net/xml/VODataService/v1.1": "VODataService-v1.1.xsd",
    "http://www.ivoa.net/xml/STC/stc-v1.30.xsd": "stc-v1.30.xsd",
    "http://hea-www.harvard.edu/~arots/nvometa/v1.30/stc-v1.30.xsd": "stc-v1.30.xsd",
    "http://www.ivoa.net/xml/Xlink/xlink.xsd": "xlink.xsd",
    "http://www.w3.org/1999/xlink": "xlink.xsd",
    "http://www.w3.org/2001/xml.xsd": "xmlnamespace.xsd",
    "http://www.w3.org/XML/1998/namespace": "xmlnamespace.xsd",
    "http://www.ivoa.net/xml/TAPRegExt/v1.0": "TAPRegExt-v1.0-Erratum1.xsd",
    "http://www.ivoa.net/xml/VOSICapabilities/v1.0": "VOSICapabilities-v1.0.xsd",
    "http://www.ivoa.net/xml/VOSIAvailability/v1.0": "VOSIAvailability-v1.0.xsd",
    "http://www.ivoa.net/xml/VOSITables/v1.0": "VOSITables-v1.1.xsd",
    "http://www.ivoa.net/xml/UWS/v1.0": "UWS-v1.1.xsd",
    "http://www.w3.org/2001/03/xml.xsd": "xmlnamespace.xsd",
    # vendored in vo/xsd/
    "http://www.openarchives.org/OAI/2.0/": "OAI-PMH.xsd",
    "http://www.openarchives.org/OAI/2.0/oai_dc/": "oai_dc.xsd",
    "http://purl.org/dc/elements/1.1/": "simpledc20021212.xsd",
    "http://dublincore.org/schemas/xmls/simpledc20021212.xsd": "simpledc20021212.xsd",
    "http://www.ivoa.net/xml/RegistryInterface/v1.0": "RegistryInterface-v1.0.xsd",
    "http://www.ivoa.net/xml/VORegistry/v1.0": "VORegistry-v1.0.xsd",
    "http://www.ivoa.net/xml/SIA/v1.1": "SIA-v1.1.xsd",
}


def _jar() -> zipfile.ZipFile:
    for jar in JARS:
        if jar.exists():
            return zipfile.ZipFile(jar)
    raise FileNotFoundError("STILTS jar not found: apt-get install stilts")


class _JarResolver(etree.Resolver):
    def __init__(self, jar: zipfile.ZipFile, files: dict[str, str] | None = None) -> None:
        super().__init__()
        self.jar = jar
        self.files = files or {}

    def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
        name = self.files.get(url) or _BY_URL.get(url) or Path(url).name
        try:
            return self.resolve_string(self.jar.read(_PREFIX + name), context)
        except KeyError:
            pass
        if (VENDORED / name).is_file():
            return self.resolve_string((VENDORED / name).read_bytes(), context)
        return None


@cache
def schema_for(*namespaces: str, files: tuple[tuple[str, str], ...] = ()) -> etree.XMLSchema:
    """An XMLSchema importing the given namespaces (plus what they import).

    ``files`` maps a namespace or schema URL to another file than the default one, e.g. the
    VODataService namespace to ``VODataService-v1.2.xsd`` (same namespace as 1.1; 1.2 adds the
    MOC coverage of registry records).
    """
    jar = _jar()
    imports = "".join(f'<xs:import namespace="{ns}" schemaLocation="{ns}"/>' for ns in namespaces)
    driver = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{imports}</xs:schema>'
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_JarResolver(jar, dict(files)))
    return etree.XMLSchema(etree.fromstring(driver.encode(), parser))


def assert_valid(document: bytes, *namespaces: str, files: tuple[tuple[str, str], ...] = ()) -> etree._Element:
    """Parse ``document`` and assert it validates against ``namespaces``; return its root."""
    root = etree.fromstring(document)
    schema = schema_for(*namespaces, files=files)
    if not schema.validate(root):
        errors = "\n".join(f"line {e.line}: {e.message}" for e in schema.error_log)
        raise AssertionError(f"document does not validate:\n{errors}")
    return root
