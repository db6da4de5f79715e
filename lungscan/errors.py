"""Exceptions raised at LungScan's edges; pages turn them into clear messages."""


class LungScanError(Exception):
    """Base class for every error LungScan raises on purpose."""


class ImageError(LungScanError):
    """An upload or file could not be read as an image we accept."""


class DicomError(ImageError):
    """A DICOM file is unreadable, has no pixel data or uses an unsupported encoding."""


class UnknownArchitectureError(LungScanError, KeyError):
    """An architecture name is not in the registry."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(LungScanError):
    """A checkpoint is missing, malformed or does not match its architecture."""


class WeightsUnavailableError(LungScanError):
    """Pretrained weights are neither cached nor downloadable."""


class DatasetError(LungScanError):
    """A dataset folder does not have a layout we understand."""


class StorageError(LungScanError):
    """The database or the scan image store could not complete an operation."""


class NotFoundError(StorageError, LookupError):
    """A scan, user or other record that was asked for does not exist."""


class ValidationError(LungScanError, ValueError):
    """Input at an edge (intake form, user form, scan record) is not acceptable; the message says why."""


class DuplicateUserError(StorageError):
    """A user with that username already exists."""


class PasswordPolicyError(ValidationError):
    """A password does not meet LungScan's password policy."""


class ReportError(LungScanError):
    """A PDF, CSV or ZIP export could not be produced."""


class LLMError(LungScanError):
    """The language model could not give a usable answer; callers fall back to offline."""


class LLMUnavailable(LLMError):
    """No key, a timeout, rate limiting that outlasted the retries, or a server error."""


class LLMSafetyBlocked(LLMError):
    """The model's safety filters blocked the request or the answer."""


class LLMBadOutput(LLMError):
    """The model answered with empty, non-JSON or schema-violating output."""


class KnowledgeBaseError(LungScanError):
    """A knowledge-base file is malformed (missing passage id, unknown source key, no Sources line)."""
