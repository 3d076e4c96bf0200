"""Hold the identifier that answers requests: load it at start-up and swap in a new bundle live.

A new bundle is loaded and warmed in the background while the old one keeps answering, then
swapped in; a bundle that fails to load leaves the old one in place. Thresholds edited inside
a bundle are reread by the pipeline itself, so only the other files are watched here.
"""

import io
import logging
import os
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_thread
from PIL import Image

from data_tools.errors import ModelNotLoadedError
from model.results import Identifier, ModelInfoDict

logger = logging.getLogger(__name__)

# Thresholds are reloaded by the pipeline on its own (see model.pipeline), not by a new load.
_FILES_NOT_WATCHED = frozenset({"thresholds.json"})
_WARM_UP_SIZE_PX = (320, 240)

# (name, inode, mtime_ns, size) of each file, and the folder's own resolved path and inode.
BundleStamp = tuple[str, int, tuple[tuple[str, int, int, int], ...]]


class ModelHolder:
    """Own the identifier in use, the reason when there is none, and the last reload's error."""

    def __init__(
        self,
        bundle_dir: Path | None,
        load_identifier: Callable[[Path], Identifier],
        *,
        warm_up: bool = True,
    ) -> None:
        """Serve the bundle at `bundle_dir` (none: serve without a model)."""
        self.bundle_dir = bundle_dir
        self.identifier: Identifier | None = None
        self.not_loaded_reason = "the model bundle has not been loaded yet"
        self.last_reload_error: str | None = None
        self.reloads_succeeded = 0
        self.reloads_failed = 0
        self._load_identifier = load_identifier
        self._warm_up = warm_up
        self._loaded_stamp: BundleStamp | None = None
        self._seen_stamp: BundleStamp | None = None
        self._failed_stamp: BundleStamp | None = None

    def require(self) -> Identifier:
        """Return the identifier in use.

        Raises:
            ModelNotLoadedError: no model is loaded; the message says why.
        """
        identifier = self.identifier
        if identifier is None:
            raise ModelNotLoadedError(
                f"No model is loaded ({self.not_loaded_reason}), so no photo can be identified; "
                "fix the bundle: the service picks up a valid one without a restart."
            )
        return identifier

    def model_info(self) -> ModelInfoDict | None:
        """Name the bundle and thresholds in use, or None with no model."""
        identifier = self.identifier
        return identifier.model_info if identifier is not None else None

    async def load(self) -> None:
        """Load the configured bundle once, at start-up; a failure leaves the service unready."""
        if self.bundle_dir is None:
            self.not_loaded_reason = (
                "no model bundle is configured; pass --bundle PATH or set MEMBERLENS_BUNDLE"
            )
            logger.warning("no bundle configured, serving without a model")
            return
        stamp = bundle_stamp(self.bundle_dir)
        self._seen_stamp = stamp
        await self._load_and_swap(self.bundle_dir, stamp, is_reload=False)

    async def check_for_new_bundle(self) -> bool:
        """Load the bundle again if its files changed and then held still; tell if it swapped.

        A change must be seen unchanged on two checks in a row before it is loaded, so that a
        bundle copied into place file by file is not read half-written.
        """
        if self.bundle_dir is None:
            return False
        stamp = bundle_stamp(self.bundle_dir)
        is_settled = stamp == self._seen_stamp
        self._seen_stamp = stamp
        if stamp is None or not is_settled:
            return False
        if stamp == self._loaded_stamp or stamp == self._failed_stamp:
            return False
        return await self._load_and_swap(self.bundle_dir, stamp, is_reload=True)

    async def watch(self, interval_s: float) -> None:
        """Check for a new bundle every `interval_s` seconds, until cancelled."""
        while True:
            await anyio.sleep(interval_s)
            await self.check_for_new_bundle()

    async def _load_and_swap(
        self, bundle_dir: Path, stamp: BundleStamp | None, *, is_reload: bool
    ) -> bool:
        logger.info("loading bundle", extra={"bundle_dir": str(bundle_dir)})
        try:
            # In a thread, so that the event loop keeps answering with the old model meanwhile.
            identifier = await anyio.to_thread.run_sync(self._load_and_warm, bundle_dir)
        except Exception as err:
            # Broad on purpose: whatever a bad bundle raises, the service must keep serving.
            self._record_failure(bundle_dir, stamp, err, is_reload=is_reload)
            return False

        self.identifier = identifier
        self._loaded_stamp = stamp
        self._failed_stamp = None
        self.last_reload_error = None
        if is_reload:
            self.reloads_succeeded += 1
        model_info = identifier.model_info
        logger.info(
            "bundle in use",
            extra={
                "bundle_dir": str(bundle_dir),
                "bundle": model_info["bundle"],
                "thresholds": model_info["thresholds"],
            },
        )
        return True

    def _load_and_warm(self, bundle_dir: Path) -> Identifier:
        identifier = self._load_identifier(bundle_dir)
        if self._warm_up:
            # The first inference pays for lazy set-up in torch and the detector; pay it here,
            # before the model answers anyone.
            identifier.identify(warm_up_photo_bytes())
        return identifier

    def _record_failure(
        self, bundle_dir: Path, stamp: BundleStamp | None, err: Exception, *, is_reload: bool
    ) -> None:
        self._failed_stamp = stamp
        reason = f"the model bundle at {bundle_dir} failed to load: {err}"
        if is_reload:
            self.reloads_failed += 1
        if self.identifier is None:
            self.not_loaded_reason = reason
            message = "bundle failed to load"
        else:
            self.last_reload_error = reason
            message = "bundle reload failed, keeping the bundle in use"
        logger.error(message, exc_info=err, extra={"bundle_dir": str(bundle_dir)})


def bundle_stamp(bundle_dir: Path) -> BundleStamp | None:
    """Fingerprint a bundle folder by its files' inodes, times and sizes; None if unreadable."""
    try:
        resolved = bundle_dir.resolve(strict=True)
        folder_inode = resolved.stat().st_ino
        files = []
        with os.scandir(resolved) as entries:
            for entry in entries:
                if entry.name in _FILES_NOT_WATCHED or not entry.is_file():
                    continue
                status = entry.stat()
                files.append((entry.name, status.st_ino, status.st_mtime_ns, status.st_size))
    except OSError:
        return None
    return (str(resolved), folder_inode, tuple(sorted(files)))


def warm_up_photo_bytes() -> bytes:
    """Encode a small synthetic photo (a soft gradient) to run once through a new model."""
    image = Image.linear_gradient("L").resize(_WARM_UP_SIZE_PX).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
