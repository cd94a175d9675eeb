"""Read command-line config values as the config schema types them.

``snakemake --config segment='{spot_sigma_um: 2.5}'`` reads nested values with
YAML's base loader, which gives every value as a string: ``'2.5'``, and the
schema, which wants a number, refuses it. :func:`typed_like_schema` reads each
string that stands where the schema does not allow a string as YAML
(``'2.5'`` → 2.5, ``'[4, 5]'`` → [4, 5], ``'true'`` → True, ``'null'`` → None),
so the override means what it says; a value that is still wrong is left to the
schema's own message.
"""

from __future__ import annotations

import yaml

__all__ = ["typed_like_schema"]


def _resolve(schema, root):
    """`schema` with a local ``$ref`` (``#/definitions/name``) followed."""
    while isinstance(schema, dict) and "$ref" in schema:
        node = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _allows_string(schema, root):
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return True
    branches = schema.get("oneOf", []) + schema.get("anyOf", [])
    if branches:
        return any(_allows_string(branch, root) for branch in branches)
    kind = schema.get("type")
    if kind is None:
        return True
    return "string" in (kind if isinstance(kind, list) else [kind])


def _branch_for(value, schema, root):
    """The first oneOf/anyOf branch whose type fits `value` (else `schema`)."""
    schema = _resolve(schema, root)
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        branch = _resolve(branch, root)
        kind = branch.get("type")
        if (kind == "object" and isinstance(value, dict)) or (
            kind == "array" and isinstance(value, list)
        ):
            return branch
    return schema


def typed_like_schema(value, schema, root=None):
    """`value` with strings read as YAML where `schema` wants another type.

    Parameters
    ----------
    value : object
        A config (or part of one), as Snakemake parsed it.
    schema : dict
        The JSON schema of `value`.
    root : dict, optional
        The whole schema, for ``$ref``; default `schema`.

    Returns
    -------
    object
        A new value; `value` is not changed.

    Examples
    --------
    >>> schema = {"type": "object", "properties": {
    ...     "sigma": {"type": "number"}, "name": {"type": "string"},
    ...     "radii": {"type": "array", "items": {"type": "number"}}}}
    >>> typed_like_schema({"sigma": "2.5", "name": "3", "radii": ["4", "5"]}, schema)
    {'sigma': 2.5, 'name': '3', 'radii': [4, 5]}
    >>> typed_like_schema({"sigma": "wide"}, schema)
    {'sigma': 'wide'}
    """
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if isinstance(value, str) and not _allows_string(schema, root):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return value if isinstance(parsed, str) else parsed
    if isinstance(value, dict):
        schema = _branch_for(value, schema, root)
        properties = schema.get("properties", {})
        return {
            key: typed_like_schema(item, properties[key], root)
            if key in properties
            else item
            for key, item in value.items()
        }
    if isinstance(value, list):
        schema = _branch_for(value, schema, root)
        if "items" in schema:
            return [typed_like_schema(item, schema["items"], root) for item in value]
    return value
