"""What the API tells us about projects and learn blocks, and which endpoint serves each block type."""

from __future__ import annotations

from dataclasses import dataclass

from ei_assets.studio.errors import UnknownBlockTypeError

# A response body as received. The client reads a body of declared length into one bytearray and
# hands that on, rather than copying it into `bytes`: a body costs its size in memory once.
Body = bytes | bytearray


@dataclass(frozen=True)
class Endpoint:
    """One metadata endpoint: `name` is stable and used in the raw archive and fetch_log."""

    name: str
    path_template: str
    params: tuple[tuple[str, str], ...] = ()

    def path(self, project_id: int, learn_id: int) -> str:
        return self.path_template.format(project_id=int(project_id), learn_id=int(learn_id))


ANOMALY = Endpoint("anomaly", "/api/{project_id}/training/anomaly/{learn_id}/metadata")
GMM = Endpoint("gmm", "/api/{project_id}/training/anomaly/{learn_id}/gmm/metadata")
KERAS = Endpoint(
    "keras",
    "/api/{project_id}/training/keras/{learn_id}/metadata",
    params=(("excludeLabels", "true"),),
)


def metadata_endpoints(block_type: str) -> tuple[Endpoint, ...]:
    """The endpoints that together describe a block of this type, primary first."""
    if block_type == "anomaly":
        return (ANOMALY,)
    if block_type == "anomaly-gmm":
        return (ANOMALY, GMM)
    if block_type == "keras" or block_type.startswith("keras-"):
        return (KERAS,)
    raise UnknownBlockTypeError(
        f"unknown learn block type {block_type!r}; no metadata endpoint is known for it "
        "(supported: anomaly, anomaly-gmm, keras, keras-*)"
    )


@dataclass(frozen=True)
class Project:
    id: int
    name: str


@dataclass(frozen=True)
class LearnBlock:
    """A learn block as discovered through GET /api/{projectId}/impulses."""

    project_id: int
    project_name: str
    impulse_id: int
    impulse_name: str
    learn_id: int
    block_type: str
    block_name: str
    block_title: str

    @property
    def key(self) -> str:
        """The stable, readable identity used for Dagster partitions: `<project_id>-<learn_id>`."""
        return f"{self.project_id}-{self.learn_id}"
