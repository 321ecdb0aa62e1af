"""The official Edge Impulse pydantic models (PyPI `edgeimpulse-api`) as a test oracle.

The generated `from_dict` uses `construct()` and validates nothing, so we call `parse_obj`.
Threshold values are a oneOf(number, string) wrapper that `parse_obj` cannot take, and whose own
`from_json` accepts anything (its validators run with validate_assignment=False, so both branches
always "match"). We check that field against the spec's oneOf ourselves, then pass it wrapped.
"""

from __future__ import annotations

import copy
from typing import Any

from edgeimpulse_api.models.anomaly_gmm_metadata_response import AnomalyGmmMetadataResponse
from edgeimpulse_api.models.anomaly_model_metadata_response import AnomalyModelMetadataResponse
from edgeimpulse_api.models.block_threshold_value import BlockThresholdValue
from edgeimpulse_api.models.generic_api_response import GenericApiResponse
from edgeimpulse_api.models.get_all_impulses_response import GetAllImpulsesResponse
from edgeimpulse_api.models.get_impulse_response import GetImpulseResponse
from edgeimpulse_api.models.get_target_constraints_response import GetTargetConstraintsResponse
from edgeimpulse_api.models.keras_model_metadata_response import KerasModelMetadataResponse
from edgeimpulse_api.models.list_projects_response import ListProjectsResponse

MODELS = {
    "projects": ListProjectsResponse,
    "impulses": GetAllImpulsesResponse,
    "impulse": GetImpulseResponse,
    "anomaly": AnomalyModelMetadataResponse,
    "gmm": AnomalyGmmMetadataResponse,
    "keras": KerasModelMetadataResponse,
    "target-constraints": GetTargetConstraintsResponse,
    "error": GenericApiResponse,
}


def validate(endpoint: str, doc: Any) -> Any:
    """Parse `doc` with the official model of `endpoint`; raises pydantic's ValidationError."""
    doc = copy.deepcopy(doc)
    for threshold in doc.get("thresholds") or [] if isinstance(doc, dict) else []:
        if isinstance(threshold, dict) and "value" in threshold:
            value = threshold["value"]
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError(f"threshold value must be a number or a string: {value!r}")
            threshold["value"] = BlockThresholdValue.construct(actual_instance=value)
    return MODELS[endpoint].parse_obj(doc)
