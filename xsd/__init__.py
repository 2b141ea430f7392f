"""Schemas and WSDL docgw validates against, shipped as package data"""
