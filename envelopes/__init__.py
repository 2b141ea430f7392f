"""The format core of docgw, sans I/O: edXML document and status packages (model, build, read),
unit codes, XML-DSig signing and verification, XSD validation, attachments and sealing.

It imports nothing else of docgw; connectors and the gateway stand on it.
"""
