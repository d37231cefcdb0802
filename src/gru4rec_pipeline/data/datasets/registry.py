"""The public data sets of the GRU4Rec authors' comparison, as data: files, downloads, protocol, defaults, figures.

One :class:`Dataset` per set (``DATASETS``, keyed by the names of ``names.DATASETS``): the raw files under their
published names, where to get them, the split of the authors' script, the official best hyperparameters (in
the official parameter files' own names and values, :func:`training_defaults` gives them in this project's),
session-rec's kNN settings where it publishes some for the set, and the official implementation's published
recall@20 / MRR@20. Plain Python, so a workflow can read it without importing numpy.

Sources:

- preprocessing: hidasib/gru4rec_third_party_comparison, ``{yoochoose,rees46,coveo,retailrocket,diginetica}
  _preproc.py``, and its README's download links;
- hyperparameters: hidasib/GRU4Rec_PyTorch_Official, ``paramfiles/<set>_<loss>_shared_best.py`` (the same values
  as its README's "Best hyperparameters" table);
- results: the official implementation's recall@20 and MRR@20 in Hidasi & Czapp, "The Effect of Third Party
  Implementations on Reproducibility", RecSys 2023 (``paper``), and GRU4Rec_PyTorch_Official's README "Results"
  table (``readme``), which differ in the third decimal (the README warns of a few percent of variation);
- kNN: rn5l/session-rec ``conf/save/<set>/...`` (commit 5dcd583, 2021-11-05).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gru4rec_pipeline.names import DATASET_RAW_FILES, DATASETS


@dataclasses.dataclass(frozen=True)
class Download:
    """Where a set's raw files come from: public ``urls`` (file name -> URL), or a ``sign_up`` page."""

    page: str
    urls: dict[str, str] = dataclasses.field(default_factory=dict)
    sign_up: str = ""
    files_from: str = ""  # what to unpack, for a set behind a sign-up


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    raw_files: tuple[str, ...]
    download: Download
    # The split of the authors' script: the test period's length, and its end (epoch seconds; None: the latest
    # event left after the filters).
    period_seconds: int
    split_time: int | None
    loss: str  # the loss of the published best setting, in this project's names
    official_parameters: dict  # the official parameter file, its names and values
    parameter_file: str
    knn: dict  # method -> settings, in this project's names, where session-rec publishes them
    knn_source: str
    published: dict  # "paper" and "readme": {"recall@20", "mrr@20"}
    protocol_preset: str = ""  # for rsc15: the protocol.preset the comparison's row uses
    item_map: bool = False  # items are strings, numbered by the reader: the split stage writes their map

    @property
    def short_title(self) -> str:
        """The title without its parenthesis: ``RetailRocket``."""
        return self.title.split(" (")[0]

    @property
    def needs_sign_up(self) -> bool:
        return not self.download.urls


# Official parameter names -> this project's (model/hyperparameters.py); ``constrained_embedding`` with
# ``embedding`` 0 is the shared embedding.
OFFICIAL_NAMES = {
    "layers": "layers",
    "batch_size": "batch_size",
    "dropout_p_embed": "dropout_embed",
    "dropout_p_hidden": "dropout_hidden",
    "learning_rate": "learning_rate",
    "momentum": "momentum",
    "n_sample": "n_sample",
    "sample_alpha": "sample_alpha",
    "bpreg": "bpreg",
    "logq": "logq",
    "elu_param": "elu_param",
    "n_epochs": "epochs",
}
OFFICIAL_LOSSES = {"cross-entropy": "ce_sampled", "bpr-max": "bpr_max"}


def _official(loss: str, layers: int, batch_size: int, dropout_embed: float, dropout_hidden: float,
              learning_rate: float, momentum: float, sample_alpha: float, bpreg: float, logq: float,
              elu_param: float) -> dict:  # fmt: skip
    """A parameter file's values (every file: constrained embedding, embedding 0, 10 epochs, 2048 samples)."""
    return {
        "loss": loss,
        "constrained_embedding": True,
        "embedding": 0,
        "elu_param": elu_param,
        "layers": [layers],
        "n_epochs": 10,
        "batch_size": batch_size,
        "dropout_p_embed": dropout_embed,
        "dropout_p_hidden": dropout_hidden,
        "learning_rate": learning_rate,
        "momentum": momentum,
        "n_sample": 2048,
        "sample_alpha": sample_alpha,
        "bpreg": bpreg,
        "logq": logq,
    }


SESSION_REC_COMMIT = "rn5l/session-rec@5dcd583"

DATASETS_BY_NAME: dict[str, Dataset] = {
    "rsc15": Dataset(
        name="rsc15",
        title="Yoochoose (RecSys Challenge 2015)",
        raw_files=DATASET_RAW_FILES["rsc15"],
        download=Download(page="https://2015.recsyschallenge.com/"),  # the archive: names.RSC15_URL
        period_seconds=86400,
        split_time=None,
        loss="ce_sampled",
        # paramfiles/yoochoose_xe_shared_best.py
        official_parameters=_official("cross-entropy", 480, 48, 0.0, 0.2, 0.07, 0.0, 0.2, 0.0, 1.0, 0.0),
        parameter_file="paramfiles/yoochoose_xe_shared_best.py",
        # conf/save/rsc15/window/window_rsc15_baselines.yml (sknn, vsknn), window_rsc15_stan.yml (stan-mrr): the
        # project's defaults, names.SESSION_KNN_DEFAULTS.
        knn={
            "sknn": {"k": 500, "sample_size": 10000, "similarity": "jaccard"},
            "vsknn": {"k": 100, "sample_size": 1000, "weighting": "quadratic", "weighting_score": "quadratic"},
            "stan": {"k": 1000, "sample_size": 10000, "lambda_spw": 1e-05, "lambda_snh": 10.0, "lambda_inh": 2.0},
        },
        knn_source=f"{SESSION_REC_COMMIT}: conf/save/rsc15/window/window_rsc15_baselines.yml, window_rsc15_stan.yml",
        published={"paper": {"recall@20": 0.6804, "mrr@20": 0.3002}, "readme": {"recall@20": 0.6789, "mrr@20": 0.3024}},
        protocol_preset="yoochoose",
    ),
    "rees46": Dataset(
        name="rees46",
        title="Rees46 (eCommerce behaviour data from a multi-category store, Oct-Nov 2019)",
        raw_files=DATASET_RAW_FILES["rees46"],
        download=Download(
            page="https://rees46.com/en/open-cdp",
            urls={
                "2019-Oct.csv.gz": "https://data.rees46.com/datasets/marketplace/2019-Oct.csv.gz",
                "2019-Nov.csv.gz": "https://data.rees46.com/datasets/marketplace/2019-Nov.csv.gz",
            },
        ),
        period_seconds=86400,
        split_time=1575158400,  # rees46_preproc.py's tsplit: 2019-12-01 00:00 UTC
        loss="ce_sampled",
        # paramfiles/rees46_xe_shared_best.py
        official_parameters=_official("cross-entropy", 512, 240, 0.45, 0.0, 0.065, 0.0, 0.5, 0.0, 1.0, 0.0),
        parameter_file="paramfiles/rees46_xe_shared_best.py",
        knn={},  # session-rec has no Rees46 configuration
        knn_source="",
        published={"paper": {"recall@20": 0.5291, "mrr@20": 0.2003}, "readme": {"recall@20": 0.5293, "mrr@20": 0.2008}},
    ),
    "coveo": Dataset(
        name="coveo",
        title="Coveo (shopper intent prediction data, 2020)",
        raw_files=DATASET_RAW_FILES["coveo"],
        download=Download(
            page="https://github.com/coveooss/shopper-intent-prediction-nature-2020",
            sign_up="https://www.coveo.com/en/ailabs/shopper-intent-prediction-from-clickstream-e-commerce-data-with-minimal-browsing-information",
            files_from="the zip archive Coveo sends after its form",
        ),
        period_seconds=86400,
        split_time=None,
        loss="bpr_max",
        # paramfiles/coveo_bprmax_shared_best.py
        official_parameters=_official("bpr-max", 512, 144, 0.35, 0.0, 0.05, 0.4, 0.2, 1.85, 0.0, 1.0),
        parameter_file="paramfiles/coveo_bprmax_shared_best.py",
        knn={},  # session-rec has no Coveo configuration
        knn_source="",
        published={"paper": {"recall@20": 0.3123, "mrr@20": 0.0994}, "readme": {"recall@20": 0.3135, "mrr@20": 0.1010}},
        item_map=True,  # product_skus_hash: hex strings
    ),
    "retailrocket": Dataset(
        name="retailrocket",
        title="RetailRocket (e-commerce data set, 2015)",
        raw_files=DATASET_RAW_FILES["retailrocket"],
        download=Download(
            page="https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset",
            sign_up="https://www.kaggle.com/datasets/retailrocket/ecommerce-dataset",
            files_from="the Kaggle download (archive.zip)",
        ),
        period_seconds=7 * 86400,
        split_time=1442545200,  # retailrocket_preproc.py's tsplit: 2015-09-18 03:00 UTC
        loss="bpr_max",
        # paramfiles/retailrocket_bprmax_shared_best.py
        official_parameters=_official("bpr-max", 224, 80, 0.5, 0.05, 0.05, 0.4, 0.4, 1.95, 0.0, 0.5),
        parameter_file="paramfiles/retailrocket_bprmax_shared_best.py",
        # conf/save/retailrocket/session_based/window/window_retailr_baselines.yml: sknn k 50, sample 5000, cosine;
        # its vsknn (weighting same, weighting_score linear) has a decay this project does not implement.
        # window_retailr_stan.yml's stan-mrr (listed under params_opt there): k 500, sample 1000.
        knn={
            "sknn": {"k": 50, "sample_size": 5000, "similarity": "cosine"},
            "stan": {"k": 500, "sample_size": 1000, "lambda_spw": 1.81, "lambda_snh": 100.0, "lambda_inh": 0.4525},
        },
        knn_source=(
            f"{SESSION_REC_COMMIT}: conf/save/retailrocket/session_based/window/window_retailr_baselines.yml, "
            "window_retailr_stan.yml"
        ),
        published={"paper": {"recall@20": 0.5187, "mrr@20": 0.2131}, "readme": {"recall@20": 0.5186, "mrr@20": 0.2175}},
    ),
    "diginetica": Dataset(
        name="diginetica",
        title="Diginetica (CIKM Cup 2016, personalized e-commerce search)",
        raw_files=DATASET_RAW_FILES["diginetica"],
        download=Download(
            page="https://competitions.codalab.org/competitions/11161",
            sign_up="https://competitions.codalab.org/competitions/11161#learn_the_details-data2",
            files_from="the competition's dataset-train-diginetica.zip",
        ),
        period_seconds=7 * 86400,
        split_time=None,
        loss="bpr_max",
        # paramfiles/diginetica_bprmax_shared_best.py
        official_parameters=_official("bpr-max", 512, 128, 0.5, 0.3, 0.05, 0.15, 0.3, 0.9, 0.0, 1.0),
        parameter_file="paramfiles/diginetica_bprmax_shared_best.py",
        # conf/save/diginetica/window/window_digi_baselines.yml: sknn k 100, sample 500, cosine; vsknn k 500,
        # sample 5000, quadratic / div (its idf_weighting 5 is not implemented here, so left out);
        # window_digi_stan.yml's stan-mrr.
        knn={
            "sknn": {"k": 100, "sample_size": 500, "similarity": "cosine"},
            "vsknn": {"k": 500, "sample_size": 5000, "weighting": "quadratic", "weighting_score": "div"},
            "stan": {"k": 500, "sample_size": 10000, "lambda_spw": 1.225, "lambda_snh": 20.0, "lambda_inh": 4.9},
        },
        knn_source=(
            f"{SESSION_REC_COMMIT}: conf/save/diginetica/window/window_digi_baselines.yml (vsknn without its "
            "idf_weighting), window_digi_stan.yml"
        ),
        published={"paper": {"recall@20": 0.4995, "mrr@20": 0.1500}, "readme": {"recall@20": 0.4995, "mrr@20": 0.1542}},
    ),
}


def training_defaults(name: str) -> dict:
    """The set's official best setting in this project's hyperparameter names (``Hyperparameters.from_dict`` input)."""
    official = dataset(name).official_parameters
    values = {project: official[key] for key, project in OFFICIAL_NAMES.items()}
    values["loss"] = OFFICIAL_LOSSES[official["loss"]]
    values["embedding"] = "shared" if official["constrained_embedding"] and official["embedding"] == 0 else "separate"
    values["embedding_dim"] = 0
    return values


def sign_up_message(name: str) -> str:
    """Where to get the raw files of a set behind a sign-up, and the ``raw`` key that takes their folder."""
    spec = dataset(name)
    files = " and ".join(spec.raw_files)
    return (
        f"{spec.title} cannot be downloaded without signing up: get {files} from {spec.download.sign_up} "
        f"({spec.download.files_from}), put {'them' if len(spec.raw_files) > 1 else 'it'} in a folder and give "
        f"that folder as --config raw=/path/to/folder (dataset: {name})"
    )


def located_raw_file(path: str | Path) -> Path | None:
    """``path`` where it is a file, else ``path.gz`` where that is (as some sets are published), else None."""
    path = Path(path)
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def raw_file_paths(name: str, folder: str | Path) -> list[Path]:
    """The raw files of ``name`` in ``folder``, each under its published name or gzipped (name.gz) where only that
    is there; a file that is neither is named as published."""
    return [located_raw_file(Path(folder, file)) or Path(folder, file) for file in dataset(name).raw_files]


def dataset(name: str) -> Dataset:
    from gru4rec_pipeline.errors import ConfigError

    if name not in DATASETS_BY_NAME:
        raise ConfigError("dataset", f"got {name!r}, expected one of {', '.join(DATASETS)}")
    return DATASETS_BY_NAME[name]
