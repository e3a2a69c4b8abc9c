"""gcp-storage-emulator, honouring generation preconditions as Cloud Storage does.

    python -m tests.gcs_server -d DIR start --host=127.0.0.1 --port=PORT --quiet

The emulator accepts ``ifGenerationMatch`` on uploads and deletes and ignores it, so a test of
fenced writes would pass whatever the code does. Here its upload and delete handlers first
compare the parameter with the object's generation (0: the object must not exist) and answer
412 Precondition Failed on a mismatch, atomically with the write.
"""

from __future__ import annotations

import threading
from http import HTTPStatus

from gcp_storage_emulator import __main__ as emulator
from gcp_storage_emulator import server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

_WRITE_LOCK = threading.Lock()  # a check and its write happen as one, as GCS does


def _object_name(request) -> str | None:
    if "name" in request.query:
        return request.query["name"][0]
    if request.params.get("object_id"):
        return request.params["object_id"]
    data = request.data
    if isinstance(data, dict):
        return (data.get("meta") or {}).get("name") or data.get("name")
    return None


def _precondition_failed(request, storage) -> bool:
    wanted = request.query.get("ifGenerationMatch")
    name = _object_name(request)
    if not wanted or name is None:
        return False
    try:
        current = storage.get_file_obj(request.params["bucket_name"], name)["generation"]
    except NotFound:
        current = "0"
    return str(wanted[0]) != str(current)


def _conditional(handler):
    def checked(request, response, storage, *args, **kwargs):
        with _WRITE_LOCK:
            if _precondition_failed(request, storage):
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json(
                    {
                        "error": {
                            "code": 412,
                            "message": "At least one of the pre-conditions "
                            "you specified did not hold.",
                        }
                    }
                )
                return None
            return handler(request, response, storage, *args, **kwargs)

    return checked


def install() -> None:
    """Wrap the handlers in the emulator's routing tables and module."""
    for name in ("insert", "delete", "xml_upload"):
        original = getattr(objects, name)
        wrapped = _conditional(original)
        setattr(objects, name, wrapped)
        for _, handlers in server.HANDLERS:
            for method, handler in list(handlers.items()):
                if handler is original:
                    handlers[method] = wrapped


if __name__ == "__main__":
    install()
    emulator.main()
