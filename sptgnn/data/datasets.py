"""Named real datasets: ``"limesoda:NAME"``. One entry point, :func:`load_dataset`, and a listing for the CLI."""

from __future__ import annotations

from sptgnn.data.limesoda import DatasetError, limesoda_names, load_limesoda
from sptgnn.data.samples import SoilSamples

SOURCES = {"limesoda": "LimeSoDa field datasets (Schmidinger et al. 2025), 10 shipped folds, CC BY-SA 4.0"}
#: Named datasets read from the data directory (``SPTGNN_DATA_DIR``), without a ``SOURCE:`` prefix.
NAMED = {
    "afsp-africa": "Africa Soil Profiles + AfSIS topsoil SOC, 20 km afgrid20 covariates (data dir: afsp-africa/)",
    "wise-global": "WISE 3.1 global topsoil SOC, no covariates (data dir: wise-global/)",
    "afsp-africa-profiles": "Africa Soil Profiles, every layer with SOC (sites, depths), afgrid20 covariates (data dir: "
                            "afsp-africa/)",
    "wise-layers": "WISE 3.1, every layer with SOC (sites, depths), no covariates (data dir: wise-global/)",
}


def available_datasets() -> list[str]:
    """Every dataset name :func:`load_dataset` accepts, e.g. ``["limesoda:B.204", ...]``."""
    return list(NAMED) + [f"limesoda:{n}" for n in limesoda_names()]


def load_dataset(name: str) -> SoilSamples:
    """Load a named dataset.

    Args:
        name: ``"SOURCE:NAME"``, e.g. ``"limesoda:BB.250"``, or a name of :data:`NAMED` (``"afsp-africa"``,
            ``"wise-global"``).

    Raises:
        DatasetError: Unknown source or dataset (the message lists the valid names); a named dataset whose files are
            missing from the data directory (the message says where to put them).
    """
    if name in NAMED:
        from sptgnn.data.africa import load_afsp_africa, load_afsp_profiles, load_wise_global, load_wise_layers

        return {"afsp-africa": load_afsp_africa, "wise-global": load_wise_global,
                "afsp-africa-profiles": load_afsp_profiles, "wise-layers": load_wise_layers}[name]()
    source, sep, rest = name.partition(":")
    if not sep or source not in SOURCES:
        raise DatasetError(
            f"unknown dataset '{name}': use one of {', '.join(NAMED)} or SOURCE:NAME with SOURCE one of {sorted(SOURCES)}, "
            "e.g. limesoda:BB.250; "
            "run `sptgnn datasets` for the list"
        )
    return load_limesoda(rest)
