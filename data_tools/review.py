"""Serve the review page of a labelled collection on 127.0.0.1: look at faces, decide, save.

The page (`data_tools/review_page/index.html`) lists the faces that `memberlens label`
flagged, shows each beside its photo, and sends confirm, relabel, not-a-member or delete
decisions back; every decision is written to `proposals.json` and the training manifest
before the answer returns.
"""

import importlib.resources
import logging
from pathlib import Path
from typing import Any, TypedDict

from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.config.allowed_hosts import AllowedHostsConfig
from litestar.exceptions import HTTPException

from data_tools.errors import InvalidParameterError, MemberlensError
from data_tools.labelled_set import LabelledSet, training_labels
from data_tools.roster import Roster

logger = logging.getLogger(__name__)

REVIEW_HOST = "127.0.0.1"
PAGE_RESOURCE = "review_page/index.html"
_MEDIA_TYPE_BY_SUFFIX = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
}


class DecisionBody(TypedDict):
    """What the page posts for one face."""

    decision: str
    member: str


def build_review_app(labelled: LabelledSet, roster: Roster, port: int) -> Litestar:
    """Build the review app over one labelled collection, to be served on 127.0.0.1:`port`.

    Only requests addressed to 127.0.0.1 or localhost are answered, so another site cannot
    reach the page through a DNS name that points here; decisions must be JSON, which a page
    of another origin cannot post without the browser asking first.

    Raises:
        InvalidParameterError: the labels name a member that the roster does not have.
    """
    missing = set(labelled.roster_slugs) - set(roster.slugs)
    if missing:
        raise InvalidParameterError(
            f"the labels were made with members {sorted(missing)} that roster {roster.group} "
            "lacks; pass the roster that `memberlens label` used"
        )
    page_html = importlib.resources.files("data_tools").joinpath(PAGE_RESOURCE).read_text("utf-8")

    @get("/", media_type=MediaType.HTML, sync_to_thread=False)
    def page() -> str:
        return page_html

    @get("/api/faces", sync_to_thread=False)
    def faces() -> dict[str, Any]:
        return {
            "group": roster.group,
            "members": [
                {"slug": member.slug, "display_name": member.display_name}
                for member in roster.members
                if member.slug in labelled.roster_slugs
            ],
            "faces": [_face_view(face) for face in labelled.faces],
        }

    @get("/api/faces/{face_id:str}/photo", sync_to_thread=True)
    def photo(face_id: str) -> Response[bytes]:
        return _file_response(labelled.collection / _known_face(labelled, face_id)["photo"])

    @get("/api/faces/{face_id:str}/chip", sync_to_thread=True)
    def chip(face_id: str) -> Response[bytes]:
        return _file_response(labelled.root / _known_face(labelled, face_id)["chip"])

    @post("/api/faces/{face_id:str}/decision", sync_to_thread=True)
    def decide(face_id: str, request: Request[Any, Any, Any], data: DecisionBody) -> dict[str, Any]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(status_code=415, detail="decisions must be sent as JSON")
        _known_face(labelled, face_id)
        try:
            face = labelled.decide(face_id, data.get("decision", ""), data.get("member", ""))
        except InvalidParameterError as err:
            raise HTTPException(status_code=422, detail=str(err)) from err
        return _face_view(face)

    return Litestar(
        route_handlers=[page, faces, photo, chip, decide],
        allowed_hosts=AllowedHostsConfig(
            allowed_hosts=[f"{host}:{port}" for host in (REVIEW_HOST, "localhost")]
        ),
        logging_config=None,
        openapi_config=None,
    )


def serve_review(labelled: LabelledSet, roster: Roster, port: int) -> None:
    """Serve the review page on 127.0.0.1:`port` until interrupted."""
    import uvicorn

    app = build_review_app(labelled, roster, port)
    logger.info("review page serving", extra={"url": f"http://{REVIEW_HOST}:{port}/"})
    uvicorn.run(app, host=REVIEW_HOST, port=port, log_config=None, access_log=False)


def _known_face(labelled: LabelledSet, face_id: str) -> Any:
    try:
        return labelled.face(face_id)
    except MemberlensError as err:
        raise HTTPException(status_code=404, detail=str(err)) from err


def _face_view(face: Any) -> dict[str, Any]:
    """The face as the page needs it: the record without landmarks, plus how it trains."""
    view = {key: value for key, value in face.items() if key != "landmarks"}
    labels = training_labels(face)
    view["trains_as"] = labels
    view["needs_review"] = bool(face["flags"]) and not face["decision"]
    return view


def _file_response(path: Path) -> Response[bytes]:
    try:
        content = path.read_bytes()
    except OSError as err:
        raise HTTPException(status_code=404, detail=f"{path.name} is missing") from err
    media_type = _MEDIA_TYPE_BY_SUFFIX.get(path.suffix.lower(), "application/octet-stream")
    return Response(content, media_type=media_type, headers={"Cache-Control": "no-store"})
