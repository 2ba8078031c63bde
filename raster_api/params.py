"""Typed, bounded request parameters, passed through titiler's factory slots.

Each class or function here replaces one of titiler's dependencies (same query names, same result) and checks its
input where it enters, so a library never sees a value it would fail on: FastAPI answers 422 naming the parameter
for what a type or bound can say, and `BadRequestError` (400) names the parameter for the rest. `parameter_slots()`
builds them from the settings, for the COG, mosaic and item factories alike.

JSON-valued parameters (`colormap`, `algorithm_params`) are parsed by `bounded_json`, which refuses documents that
are too large or too deeply nested before `json.loads` sees them (a deep one would raise `RecursionError`).
"""

import inspect
import json
import math
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import attrs
import jinja2
import morecantile
import numpy
from color_operations.operations import parse_operations
from fastapi import Query
from fastapi.templating import Jinja2Templates
from morecantile import TileMatrixSet
from morecantile.defaults import TileMatrixSets
from pydantic import Field
from rio_tiler.colormap import cmap as default_cmap
from titiler.core.algorithm import BaseAlgorithm
from titiler.core.algorithm import algorithms as default_algorithms
from titiler.core.dependencies import (
    DefaultDependency,
    HistogramParams,
    ImageRenderingParams,
    PartFeatureParams,
    PreviewParams,
    StatisticsParams,
    TileParams,
)
from titiler.core.errors import BadRequestError

from raster_api.errors import NO_PIXEL, OverBudget
from raster_api.reading import current_read_log
from raster_api.rendering import render_image
from raster_api.settings import ApiSettings

MAX_JSON_BYTES = 65_536
MAX_JSON_DEPTH = 8
MAX_HISTOGRAM_BINS = 10_000
MAX_COLORMAP_ENTRIES = 1_024
# Coordinates beyond this (in any CRS a feature or bbox may use) map to no pixel: GDAL's window arithmetic overflows.
MAX_COORDINATE = 1e9
# Bands an algorithm reads, where titiler's class does not declare `input_nbands` although it indexes bands.
ALGORITHM_BANDS = {"grayscale": 3, "bitonal": 3}
# What an algorithm holds per input sample: a few float64 arrays (gradients, shaded relief, the result).
ALGORITHM_WORK_BYTES = 4 * 8
# Bounds of color_formula arguments: beyond them the operations overflow or divide by zero.
FORMULA_BOUNDS = {"gamma": (0.01, 100.0), "saturation": (0.0, 100.0), "sigmoidal": (0.0, 100.0)}


class JsonTooLarge(BadRequestError):
    """A JSON document larger or deeper than its parameter allows (refused before it is parsed)."""


def bounded_json(name: str, text: str, max_depth: int = MAX_JSON_DEPTH, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """`json.loads(text)` for the parameter `name`, refusing (400) what is too large or too deep."""
    if len(text) > max_bytes:
        raise JsonTooLarge(f"{name} is longer than {max_bytes} characters")
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise JsonTooLarge(f"{name} is nested deeper than {max_depth} levels")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"{name} is not valid JSON: {exc.msg} at position {exc.pos}") from None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _color(name: str, value: Any) -> tuple[int, ...]:
    """An RGB(A) color: `[r, g, b(, a)]` of integers 0-255, or `#RRGGBB(AA)`."""
    if isinstance(value, str):
        digits = value.removeprefix("#")
        if len(digits) in (6, 8) and all(c in "0123456789abcdefABCDEF" for c in digits):
            rgba = tuple(int(digits[i : i + 2], 16) for i in range(0, len(digits), 2))
            return rgba if len(rgba) == 4 else (*rgba, 255)
    elif (
        isinstance(value, list)
        and len(value) in (3, 4)
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    ):
        return tuple(value) if len(value) == 4 else (*value, 255)
    raise BadRequestError(f"{name}: {json.dumps(value)[:60]} is not a color ([r, g, b(, a)] of 0-255, or #RRGGBB)")


def parse_colormap(text: str) -> Any:
    """A custom colormap: `{"<int>": color, ...}` or `[[[min, max], color], ...]` (rio-tiler's two forms)."""
    value = bounded_json("colormap", text, max_depth=4)
    if isinstance(value, dict) and 0 < len(value) <= MAX_COLORMAP_ENTRIES:
        colormap = {}
        for key, color in value.items():
            try:
                index = int(key)
            except ValueError:
                raise BadRequestError(f"colormap keys must be integer pixel values, not {key[:40]!r}") from None
            colormap[index] = _color(f"colormap[{key}]", color)
        return colormap
    if isinstance(value, list) and 0 < len(value) <= MAX_COLORMAP_ENTRIES:
        intervals = []
        for index, entry in enumerate(value):
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list)):
                raise BadRequestError(f"colormap[{index}] must be [[min, max], color]")
            bounds = entry[0]
            if not (len(bounds) == 2 and all(_finite(b) for b in bounds) and bounds[0] < bounds[1]):
                raise BadRequestError(f"colormap[{index}]: the interval must be [min, max] numbers with min < max")
            intervals.append(((bounds[0], bounds[1]), _color(f"colormap[{index}]", entry[1])))
        return intervals
    raise BadRequestError(
        f"colormap must be a JSON object or list of 1 to {MAX_COLORMAP_ENTRIES} entries "
        '({"<value>": [r, g, b, a]} or [[[min, max], [r, g, b, a]], ...])'
    )


async def colormap_dependency(
    colormap_name: Annotated[
        Literal[tuple(default_cmap.list())] | None,  # type: ignore[valid-type]
        Query(description="Colormap name"),
    ] = None,
    colormap: Annotated[str | None, Query(description="JSON encoded custom Colormap")] = None,
) -> Any:
    """`colormap_dependency`: titiler's, with the custom colormap's shape checked (400 naming the entry)."""
    if colormap_name:
        return default_cmap.get(colormap_name)
    return parse_colormap(colormap) if colormap else None


def _check_color_formula(formula: str) -> None:
    try:
        parse_operations(formula)
    except Exception:  # color_operations raises bare ValueError/KeyError/IndexError for any malformed formula
        raise BadRequestError(f"color_formula {formula[:80]!r} is not a valid rio-color formula") from None
    tokens = formula.replace(",", " ").split()
    operation = None
    for token in tokens:
        lowered = token.lower()
        if lowered in FORMULA_BOUNDS:
            operation = lowered
            continue
        try:
            number = float(token)
        except ValueError:
            continue  # band names (r, g, b, rgb)
        low, high = FORMULA_BOUNDS.get(operation or "", (-math.inf, math.inf))
        if not math.isfinite(number) or not low <= number <= high:
            raise BadRequestError(f"color_formula: {operation} argument {token} must be between {low} and {high}")


def _rendering_params(max_size: int) -> type[ImageRenderingParams]:
    @dataclass
    class BoundedRenderingParams(ImageRenderingParams):
        """`render_dependency`: rescale ranges of finite numbers with min < max; color formulas that compute."""

        def __post_init__(self) -> None:
            for value in self.rescale or []:
                parts = value.strip("[]").split(",")
                numbers = [float(p) for p in parts if _is_number(p)]
                if len(parts) != 2 or len(numbers) != 2 or not all(map(math.isfinite, numbers)):
                    raise BadRequestError(f"rescale={value[:60]!r} must be 'min,max' (two finite numbers)")
                if not numbers[0] < numbers[1]:
                    raise BadRequestError(f"rescale={value[:60]!r}: min must be below max")
            if self.color_formula:
                _check_color_formula(self.color_formula)
            super().__post_init__()

    return BoundedRenderingParams


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class BoundedHistogramParams(HistogramParams):
    """`histogram_dependency`: 1 to `MAX_HISTOGRAM_BINS` bins, or increasing edges; a range with min < max."""

    def __post_init__(self) -> None:
        if self.bins:
            edges = [float(b) for b in self.bins.split(",")]
            if len(edges) == 1 and not 1 <= edges[0] <= MAX_HISTOGRAM_BINS:
                raise BadRequestError(f"histogram_bins must be between 1 and {MAX_HISTOGRAM_BINS}")
            if len(edges) > MAX_HISTOGRAM_BINS + 1 or any(a >= b for a, b in zip(edges, edges[1:], strict=False)):
                raise BadRequestError("histogram_bins edges must increase from left to right")
        if self.range:
            low, high = (float(v) for v in self.range.split(","))
            if not low < high:
                raise BadRequestError(f"histogram_range={self.range}: min must be below max")
        super().__post_init__()


@dataclass
class BoundedStatisticsParams(StatisticsParams):
    """`stats_dependency`: percentiles between 0 and 100."""

    percentiles: Annotated[  # type: ignore[assignment]
        list[Annotated[int, Field(ge=0, le=100)]] | None,
        Query(alias="p", title="Percentile values", description="Percentiles, 0-100 (default [2, 98])."),
    ] = None


def _size(max_size: int, description: str) -> Any:
    return Annotated[int | None, Field(ge=1, le=max_size, description=description)]


def _image_params(limit: int) -> tuple[type[PreviewParams], type[PartFeatureParams], type[TileParams]]:
    """Output sizes between 1 and `limit` px: bigger ones would exhaust a Lambda's memory."""

    @dataclass
    class BoundedPreviewParams(PreviewParams):
        max_size: Annotated[int, Field(ge=1, le=limit, description="Maximum image size to read onto.")] = 1024
        height: _size(limit, "Force output image height.") = None  # type: ignore[valid-type]
        width: _size(limit, "Force output image width.") = None  # type: ignore[valid-type]

    @dataclass
    class BoundedPartParams(PartFeatureParams):
        """`/bbox` and `/feature`: without width/height titiler reads the area at full resolution (gigabytes for a
        large area); here the longest side is at most `limit` unless the request says otherwise."""

        max_size: Annotated[
            int | None, Field(ge=1, le=limit, description=f"Maximum image size to read onto (default {limit}).")
        ] = limit
        height: _size(limit, "Force output image height.") = None  # type: ignore[valid-type]
        width: _size(limit, "Force output image width.") = None  # type: ignore[valid-type]

    @dataclass
    class BoundedTileParams(TileParams):
        buffer: Annotated[
            float | None,
            Query(gt=0, le=limit / 4, description="Buffer on each side of the given tile (pixels, multiple of 0.5)."),
        ] = None
        padding: Annotated[
            int | None, Query(gt=0, le=limit / 4, description="Padding to apply to each tile edge (pixels).")
        ] = None

    return BoundedPreviewParams, BoundedPartParams, BoundedTileParams


class FittedAlgorithm:
    """An algorithm that first checks the image has the bands it reads (titiler would raise IndexError), and whose
    64-bit integer results (e.g. `sum` of bytes) are rendered only with `rescale` (rio-tiler overflows on them)."""

    def __init__(self, name: str, algorithm: BaseAlgorithm, rescaled: bool) -> None:
        self.name = name
        self.algorithm = algorithm
        self.bands = ALGORITHM_BANDS.get(name) or algorithm.input_nbands
        self.rescaled = rescaled

    def __call__(self, img: Any) -> Any:
        limit = current_read_log().meter.limits.max_output_bytes
        work = img.array.size * ALGORITHM_WORK_BYTES
        if work > limit:
            raise OverBudget(
                "max_output_bytes",
                f"algorithm {self.name!r} would work on {img.width}x{img.height} px x {img.count} band(s) in float64 "
                f"arrays (about {work / 2**20:,.0f} MB), above the {limit / 2**20:,.0f} MB a request may hold "
                "(RASTER_API_MAX_OUTPUT_BYTES): ask for fewer pixels (tilesize, max_size, width/height)",
            )
        if self.bands and img.count < self.bands:
            raise BadRequestError(
                f"algorithm {self.name!r} needs {self.bands} band(s), the image has {img.count}: "
                "choose them with bidx or expression"
            )
        try:
            result = self.algorithm(img)
        except ValueError as exc:
            # titiler's algorithms say so when the data and their parameters do not fit (TerrainRGB's range beyond
            # 256**3 for a tiny `interval`; a gradient of an image one pixel wide with `buffer=0`).
            raise BadRequestError(
                f"algorithm {self.name!r} cannot be applied to this image with these algorithm_params: "
                f"{_first_line(exc)[:200]}"
            ) from None
        if result.array.dtype.kind in "iu" and result.array.dtype.itemsize == 8:
            if not self.rescaled:
                raise BadRequestError(
                    f"algorithm {self.name!r} gives 64-bit integers, which cannot be rendered: add `rescale`"
                )
            result.array = numpy.ma.asarray(result.array, dtype="float64")  # exact below 2**53
        return result


async def process_dependency(
    algorithm: Annotated[
        str | None,
        Query(description="Algorithm name", json_schema_extra={"enum": sorted(default_algorithms.list())}),
    ] = None,
    algorithm_params: Annotated[str | None, Query(description="Algorithm parameters (a JSON object)")] = None,
    rescale: Annotated[list[str] | None, Query(include_in_schema=False)] = None,
) -> FittedAlgorithm | None:
    """`process_dependency`: titiler's, with parameters checked (a JSON object the algorithm accepts) and the
    algorithm checked against the image's bands."""
    if not algorithm:
        return None
    if algorithm not in default_algorithms.list():
        raise BadRequestError(f"unknown algorithm {algorithm!r}; known: {', '.join(sorted(default_algorithms.list()))}")
    params = bounded_json("algorithm_params", algorithm_params, max_depth=4) if algorithm_params else {}
    if not isinstance(params, dict):
        raise BadRequestError(f"algorithm_params for {algorithm!r} must be a JSON object")
    algorithm_class = default_algorithms.get(algorithm)
    # Only the algorithm's own parameters: its bands, output type and range are what the renderer relies on.
    own = sorted(set(algorithm_class.model_fields) - set(BaseAlgorithm.model_fields) - {"title", "description"})
    if unknown := sorted(set(params) - set(own)):
        raise BadRequestError(
            f"algorithm_params for {algorithm!r}: unknown parameter(s) {', '.join(map(repr, unknown))[:200]}; "
            f"it takes {', '.join(own) or 'none'}"
        )
    try:
        instance = algorithm_class(**params)
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise BadRequestError(f"invalid algorithm_params for {algorithm!r}: {exc}") from None
    # `rescale` is the render dependency's (read here too, hidden from the schema): 64-bit results need it.
    return FittedAlgorithm(algorithm, instance, rescaled=bool(rescale))


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class SharedTileMatrixSets(TileMatrixSets):
    """morecantile's registry without its deep copy on every `get` (titiler asks for the TMS on every tile): titiler
    and rio-tiler only read a TMS, and one shared instance keeps what morecantile caches on it from tile to tile."""

    def get(self, identifier: str) -> TileMatrixSet:
        if not isinstance(self.tilematrixsets.get(identifier), TileMatrixSet):
            super().get(identifier)  # loads the document into the registry (or raises for an unknown identifier)
        tms: TileMatrixSet = self.tilematrixsets[identifier]
        return tms


TILE_MATRIX_SETS = SharedTileMatrixSets(dict(morecantile.tms.tilematrixsets))


# titiler's templates, with our copy of `map.html` first (the COG, /md/, mosaic and item map pages): titiler's and
# titiler.pgstac's put an error's detail (which names the caller's parameters) and a file's band names into the point
# popup as HTML.
TEMPLATES = Jinja2Templates(
    env=jinja2.Environment(
        autoescape=jinja2.select_autoescape(["html"]),
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader(Path(__file__).parent / "templates" / "titiler"),
                jinja2.PackageLoader("titiler.core", "templates"),
            ]
        ),
    )
)


def parameter_slots(settings: ApiSettings, factory: type, **given: Any) -> dict[str, Any]:
    """The keyword arguments of `factory` (a titiler factory class) for its dependency slots: the dependencies above,
    the renderer and the shared tile matrix sets, the caller's `given` ones, and the factory's defaults for the rest;
    every parameter class among them parsed on the event loop (`parsed_in_loop`)."""
    preview, part, tile = _image_params(settings.max_image_size)
    slots: dict[str, Any] = {
        "process_dependency": process_dependency,
        "colormap_dependency": colormap_dependency,
        "render_dependency": _rendering_params(settings.max_image_size),
        "histogram_dependency": BoundedHistogramParams,
        "stats_dependency": BoundedStatisticsParams,
        "img_preview_dependency": preview,
        "img_part_dependency": part,
        "tile_dependency": tile,
        "render_func": render_image,
        "supported_tms": TILE_MATRIX_SETS,
        "templates": TEMPLATES,
        **given,
    }
    accepted = attrs.fields_dict(factory)
    for name, slot in accepted.items():
        if name.endswith("_dependency") and name not in slots and isinstance(slot.default, type):
            slots[name] = slot.default
    return {
        name: parsed_in_loop(value) if isinstance(value, type) and issubclass(value, DefaultDependency) else value
        for name, value in slots.items()
        if name in accepted
    }


def parsed_in_loop[Params: DefaultDependency](params: type[Params]) -> type[Params]:
    """`params` (a titiler parameter class) as a function FastAPI runs on the event loop.

    FastAPI runs a class dependency in its thread pool, since it cannot tell that `__init__` only parses: a thread hop
    per class per request (six for a tile). The stand-in is a plain function that FastAPI takes for a coroutine
    function (`inspect.markcoroutinefunction`): it parses at once, on the loop, and returns an instance of the class
    that is awaitable to itself. So FastAPI's `await` and titiler's direct calls (`check_query_params`, which decides
    whether a WMTS layer's or a render's query is valid by building the classes) both get the instance, and both see
    the class's refusals. FastAPI reads the parameters from the signature: the query names, validation and OpenAPI
    schema are the class's own. (Typed as the class for titiler's slots, which take one.)"""
    awaitable = type(params.__name__, (params,), {"__await__": _itself, "__doc__": params.__doc__})

    def parse(**values: Any) -> Params:
        return cast(Params, awaitable(**values))

    parse.__signature__ = inspect.signature(params, eval_str=True)  # type: ignore[attr-defined]
    parse.__name__ = parse.__qualname__ = params.__name__
    parse.__doc__ = params.__doc__
    return cast(type[Params], inspect.markcoroutinefunction(parse))


def _itself(instance: Any) -> Generator[None, None, Any]:
    """`await instance` is the instance."""
    yield from ()
    return instance


def check_feature_areas(body: Any, max_features: int, max_vertices: int) -> None:
    """Every geometry of a Feature or FeatureCollection body reads a polygon area of at least one pixel (400), and
    the body holds at most `max_features` features and `max_vertices` positions (each feature is one read)."""
    geometries = _geometries(body)
    if len(geometries) > max_features:
        raise OverBudget(
            "max_features",
            f"the body holds {len(geometries)} features, more than {max_features} (RASTER_API_MAX_FEATURES)",
        )
    vertices = sum(len(list(_points(g.get("coordinates")))) for g in geometries if isinstance(g, dict))
    if vertices > max_vertices:
        raise OverBudget(
            "max_vertices",
            f"the body holds {vertices} positions, more than {max_vertices} (RASTER_API_MAX_VERTICES)",
        )
    for geometry in geometries:
        _check_area(geometry)


def _geometries(geojson: Any) -> list[Any]:
    """The geometries of a Feature or FeatureCollection body."""
    if not isinstance(geojson, dict):
        return []
    if geojson.get("type") == "FeatureCollection":
        return [g for f in geojson.get("features") or [] for g in _geometries(f)]
    return [geojson.get("geometry")] if geojson.get("type") == "Feature" else []


def _check_area(geometry: Any) -> None:
    """rio-tiler reads a feature's polygon area: another geometry type, or coordinates so large or so degenerate
    that the area maps to no pixel, fail deep in rio-tiler and GDAL; here they are a 400."""
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        kind = geometry.get("type") if isinstance(geometry, dict) else None
        raise BadRequestError(f"the feature's geometry must be a Polygon or MultiPolygon, not {str(kind)[:40]}")
    points = list(_points(geometry.get("coordinates")))
    if not points or not all(abs(v) <= MAX_COORDINATE for point in points for v in point[:2]):
        raise BadRequestError(NO_PIXEL)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if not (min(xs) < max(xs) and min(ys) < max(ys)):
        raise BadRequestError(NO_PIXEL)


def _points(coordinates: Any) -> Any:
    """Every [x, y, ...] position of nested GeoJSON coordinates (the body model checked their shape)."""
    if isinstance(coordinates, list) and coordinates and all(isinstance(c, int | float) for c in coordinates):
        yield coordinates
    elif isinstance(coordinates, list):
        for item in coordinates:
            yield from _points(item)
