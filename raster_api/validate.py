"""`/cog/validate` through the provider-read seam.

titiler's `cogValidateExtension` hands the path to rio-cogeo, which opens it itself: that read would carry no
provider credentials and skip the retry, error wording and access record. Here the dataset is opened through
`ProviderReader` first, and rio-cogeo then reads the same canonical path inside that reader's provider env.
"""

from typing import Annotated, Any

import rasterio
from attrs import define
from fastapi import Depends, Query
from rio_cogeo.cogeo import cog_info
from rio_cogeo.models import Info
from titiler.core.factory import FactoryExtension, TilerFactory
from titiler.core.resources.responses import JSONResponse


@define
class ProviderCogValidateExtension(FactoryExtension):
    """Add `/validate` (rio-cogeo's report) to a COG factory whose reader is `ProviderReader`."""

    def register(self, factory: TilerFactory) -> None:  # type: ignore[override]
        @factory.router.get(
            "/validate",
            response_model=Info,
            response_class=JSONResponse,
            operation_id=f"{factory.operation_prefix}validate",
        )
        def validate(
            src_path: Annotated[Any, Depends(factory.path_dependency)],
            reader_params: Annotated[Any, Depends(factory.reader_dependency)],
            env: Annotated[dict, Depends(factory.environment_dependency)],
            strict: Annotated[bool, Query(description="Treat warnings as errors")] = False,
        ) -> Info:
            """Validate a COG"""
            with rasterio.Env(**env), factory.reader(src_path, **reader_params.as_dict()) as src:
                return cog_info(src.read_path, strict=strict)
