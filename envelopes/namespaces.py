"""Namespace URIs and algorithm identifiers, named once."""

QCVN = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DSIG = "http://www.w3.org/2000/09/xmldsig#"

#: The prefix docgw writes for the QCVN namespace (the SDK and the axis write the same).
QCVN_PREFIX = "edXML"

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"


def q(local: str) -> str:
    """Clark notation for an element of the QCVN namespace: ``q("From")``."""
    return f"{{{QCVN}}}{local}"


def ds(local: str) -> str:
    """Clark notation for an XML-DSig element."""
    return f"{{{DSIG}}}{local}"
