"""Names the workflow, the command line and the library share, each defined once.

Plain Python with no imports, so that the Snakefile and ``gru4rec-pipeline --help`` can read them
without loading numpy or torch. ``tests/test_names.py`` checks that ``config/schema.yaml`` and
``config/config.yaml`` agree with them.
"""

# GRU4Rec losses (Hidasi et al. 2016; Hidasi & Karatzoglou 2018), in the order tables list them.
LOSSES = ("ce_full", "ce_sampled", "bpr", "bpr_max", "top1", "top1_max")
# Losses that score the minibatch targets plus shared extra samples instead of all items.
SAMPLED_LOSSES = ("ce_sampled", "bpr", "bpr_max", "top1", "top1_max")
# Pairwise ranking losses, which may put an ELU on the scores first.
RANKING_LOSSES = ("bpr", "bpr_max", "top1", "top1_max")

# Non-neural baselines, and the synthetic data's Bayes-optimal predictor (a ceiling, not a baseline to beat).
BASELINES = ("pop", "spop", "itemknn", "sknn", "vsknn", "stan")
ORACLE = "oracle"

# The RSC15 protocol's splits, and which of them a setting trains on and evaluates on.
SPLITS = ("train_full", "test", "train_tr", "valid")
SETTING_SPLITS = {
    "final": {"train": "train_full", "eval": "test"},
    "tuning": {"train": "train_tr", "eval": "valid"},
}
SETTINGS = tuple(SETTING_SPLITS)

# Where a model retrained with its loss's best tuned setting is named: results/recall_bpr_max_tuned.txt.
TUNED_SUFFIX = "_tuned"

DEVICES = ("auto", "cpu", "cuda")
# How a training's epochs drive its step (config key training.engine): loop (one call of the step per minibatch,
# with the compiled CPU kernels), eager (the fixed-shape step in chunks over device buffers, run eagerly),
# graphs (those chunks replayed from CUDA graphs: a CUDA device, one process), auto (graphs on a CUDA device,
# eager there across processes, loop on a CPU). The summary and the log name the engine that ran by these words.
ENGINES = ("auto", "loop", "eager", "graphs")
EMBEDDING_MODES = ("shared", "separate", "none")

# How items scoring exactly like the target are ranked (as the official GRU4Rec evaluation defines them), and the
# default: conservative (every tied item before the target), the official evaluation's default, because a scorer
# that gives many items one score (a kNN's 0) would otherwise be handed hits that its scores do not decide.
TIE_MODES = ("standard", "conservative", "median")
DEFAULT_TIE_MODE = "conservative"
DEFAULT_CUTOFFS = (1, 5, 10, 20)
# The accuracy metrics of every evaluation, by cut-off, in the order files list them: recall@k, MRR@k, NDCG@k
# (evaluation/ranking.py defines them).
ACCURACY_METRICS = ("recall", "mrr", "ndcg")
# The beyond-accuracy metrics of every evaluation, by cut-off (evaluation/beyond_accuracy.py defines them).
BEYOND_ACCURACY_METRICS = ("coverage", "popularity")
# The cut-off of the one figure a table shows per run (the day-by-day table and figure, the window summary's
# slices): 20, the literature's, when evaluation.cutoffs has it, else the largest configured.
HEADLINE_CUTOFF = 20


def headline_cutoff(cutoffs) -> int:
    """The cut-off a single figure is reported at, of ``cutoffs`` (see HEADLINE_CUTOFF)."""
    values = [int(c) for c in cutoffs]
    return HEADLINE_CUTOFF if HEADLINE_CUTOFF in values else max(values)


RANKING_METHODS = ("auto", "certified", "brute-force")

# Columns of results/models/{setting}/{loss}/history.csv, one row per epoch.
HISTORY_COLUMNS = ("epoch", "loss", "events", "events_per_s", "wall_s")

# How the time column of a click log of one's own is read.
TIME_FORMATS = ("auto", "epoch", "iso")
# How its session and item ids are read: integers as they are, or any strings mapped to dense integers.
ID_MODES = ("integer", "map")

# Presets of the synthetic yoochoose-format dataset (``synthetic.archive.PRESETS`` defines their sizes).
SYNTHETIC_PRESETS = ("tiny", "default", "full")

# Defaults of the settings the config, the command line and the library share.
# The RSC15 protocol (config key protocol): sessions shorter than 2 events and items with fewer than 5
# events are dropped, and sessions ending in the last day (86,400 s) form the test split. Exact duplicate
# clicks are kept, as the published preprocessing keeps them (drop_duplicates drops them first).
PROTOCOL_DEFAULTS = {"min_session_length": 2, "min_item_support": 5, "split_seconds": 86400.0, "drop_duplicates": False}
# Protocols of the split stage (config key protocol.preset): RSC15's published one, and the deduplicated
# Yoochoose protocol of the GRU4Rec authors' 2023 comparison.
PROTOCOL_PRESETS = ("rsc15", "yoochoose", "window")
# session-rec's sliding windows (config key protocol.window), as its RSC15 runs configure them
# (conf/preprocess/session_based/window/rsc15.yml): 5 slices of 30 training days and 1 test day, 31 days apart,
# the first 5 days after the first click.
WINDOW_DEFAULTS = {"slices": 5, "days_train": 30, "days_test": 1, "days_shift": 31, "days_offset": 5}
# Threads per job of each stage (config keys training.threads, evaluation.threads), measured with
# bench/bench_threads.py: a training at batch 32 runs fastest on one thread; ranking gains from a second.
THREAD_DEFAULTS = {"training": 1, "evaluation": 2}
# Data-parallel training (config keys training.processes, training.nodes): processes per node and nodes that
# train one model together; 1 and 1 is one process, without torch.distributed.
DATA_PARALLEL_DEFAULTS = {"processes": 1, "nodes": 1, "exchange": "auto"}
# How the processes of a data-parallel training combine their gradients (config key training.exchange):
# shared_memory (one copy of the weights on a node, each process updating its share: training/parallel/
# shared_memory.py), all_reduce (torch.distributed's all-reduce, every process updating a replica of its own:
# training/parallel/group.py),
# auto (shared_memory for CPU processes on one node, else all_reduce).
EXCHANGES = ("auto", "shared_memory", "all_reduce")
# Item-kNN (config key baselines.itemknn): neighbours kept per item, shrinkage lambda.
ITEMKNN_DEFAULTS = {"neighbors": 100, "lambda": 20.0}
# Session-based kNN baselines (config keys baselines.sknn / vsknn / stan), defaults as session-rec's RSC15
# configurations (conf/save/rsc15/window/window_rsc15_baselines.yml: sknn, vsknn; window_rsc15_stan.yml, the
# stan-mrr setting: stan); vsknn's similarity is the constructor default (vec). lambda_snh is in days.
SKNN_SIMILARITIES = ("jaccard", "cosine", "cosine_session_rec")
# V-SKNN's weights of a current session's item by its position and of a neighbour by its latest shared click.
POSITION_WEIGHTS = ("same", "div", "log", "quadratic")
# V-SKNN's tie rule among equally recent / equally similar sessions (baselines.vsknn.ties; first: default).
KNN_TIES = ("recency", "session_rec")
SESSION_KNN_DEFAULTS = {
    "sknn": {"k": 500, "sample_size": 10000, "similarity": "jaccard"},
    "vsknn": {"k": 100, "sample_size": 1000, "weighting": "quadratic", "weighting_score": "quadratic"},
    "stan": {"k": 1000, "sample_size": 10000, "lambda_spw": 1e-05, "lambda_snh": 10.0, "lambda_inh": 2.0},
}

# Hyperparameter studies (config key tuning): finished trials per loss, worker jobs, the metric maximised on the
# valid split, epochs per trial, the samplers' seed, median pruning, the Optuna storage ("" = a journal file), and
# the losses `rule all` tunes.
TUNING_DEFAULTS = {
    "trials": 100,
    "workers": 4,
    "metric": "mrr@20",
    "epochs": 5,
    "seed": 42,
    "pruning": True,
    "storage": "",
    "run": [],
}
# What a study maximises: one of these at a cut-off, e.g. mrr@20.
TUNING_METRICS = ("mrr", "recall")
# Hyperparameters a search space may vary (the others are properties of the run: loss, epochs, seed, device).
TUNABLE_HYPERPARAMETERS = (
    "layers",
    "batch_size",
    "learning_rate",
    "momentum",
    "dropout_embed",
    "dropout_hidden",
    "embedding",
    "embedding_dim",
    "n_sample",
    "sample_alpha",
    "logq",
    "bpreg",
    "elu_param",
)

# Where the RecSys Challenge 2015 archive is published (config key url).
RSC15_URL = "https://s3-eu-west-1.amazonaws.com/yc-rdata/yoochoose-data.7z"

# The files of a trained model's folder (model/folder.py: ModelFolder), by role: the weights, the per-epoch history,
# the training's summary, the training state a retrain continues (optimizer state, generators), the vocabulary it
# was trained with (a retrained model's: its parent's, grown), and the per-epoch checkpoints while it trains.
MODEL_FOLDER_FILES = {
    "model": "model.pt",
    "history": "history.csv",
    "summary": "training.json",
    "state": "training_state.pt",
    "vocab": "vocab.parquet",
    "checkpoints": "checkpoints",
}
TRAINING_STATE_FILE = MODEL_FOLDER_FILES["state"]
# Retraining (config key retrain): epochs on the new clicks, and the weight of the parent's support in the
# sampler's (0: the new clicks' popularity only).
RETRAIN_DEFAULTS = {"clicks": "", "epochs": 1, "support_decay": 0.0}
# The day-by-day evaluation (config key rolling): the losses it runs for ([]: off), the last days tested, the
# epochs of a warm model's retrain on each day.
ROLLING_DEFAULTS = {"run": [], "days": 3, "epochs_warm": 1}
# Its strategies: a new training on all days before, yesterday's model retrained on yesterday, the first day's.
ROLLING_STRATEGIES = ("scratch", "warm", "frozen")

# The data sets of the GRU4Rec authors' comparison of implementations (data/datasets/registry.py describes each):
# RSC15's yoochoose clicks (the default), Rees46, Coveo, RetailRocket and Diginetica.
DATASETS = ("rsc15", "rees46", "coveo", "retailrocket", "diginetica")
# The data set a run uses unless config key `dataset` names another; its results lie in results/, another set's in
# results/<dataset>/.
DEFAULT_DATASET = "rsc15"
# Their raw files under their published names (a gzipped one, name.gz, is read as well), and the time format of
# Rees46's event_time column.
DATASET_RAW_FILES = {
    "rsc15": ("yoochoose-clicks.dat", "yoochoose-test.dat"),
    "rees46": ("2019-Oct.csv", "2019-Nov.csv"),
    "coveo": ("release_10_23_2020.csv",),
    "retailrocket": ("events.csv",),
    "diginetica": ("train-item-views.csv",),
}
REES46_TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
