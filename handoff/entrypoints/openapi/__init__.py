"""OpenAPI 3.1 document generated from the wire models, so the document cannot drift from the code.

The routes are data, one module per resource (:mod:`.handoffs`, :mod:`.history`, :mod:`.alerts`,
:mod:`.webhooks`, :mod:`.protocols`, :mod:`.contract`); :mod:`.document` assembles them with the schemas of
the models.
"""

from handoff.entrypoints.openapi.document import openapi_document

__all__ = ["openapi_document"]
