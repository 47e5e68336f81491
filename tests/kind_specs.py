"""One small spec per kind (``conf_<kind>``), settings cut to seconds on the tiny synthetic dataset (smoke profile):
the conformance suite runs each of them, and ``abaw predict`` is checked against the nodes they leave. Kinds over
inputs read the video kind's embeddings / predictions."""

SPECS: dict[str, str] = {
    "video": "kind: video\nseed: 3\nepochs: 1\nimage_size: 32\nframe_step: 8\neval_step: 8\npatience: 1\n",
    "audio": "kind: audio\nseed: 3\nepochs: 1\nmin_speech: 0.0\ntiny_corpus_clips: 0\nper_task: {}\n",
    "dynamic": "kind: dynamic\nseed: 3\ninputs: [conf_video]\nwindow_s: 1\nepochs: 2\nlayers: 1\nheads: 4\n",
    "kelm": "kind: kelm\ninputs: [conf_video]\nwindow_s: 2\nc_grid: [1, 100]\nhonest_folds: 2\n",
    "dwf": "kind: dwf\ninputs: [conf_video, conf_dynamic]\nsamples: 10\nfolds: 2\n",
    "rf": "kind: rf\ninputs: [conf_video, conf_dynamic]\ntrees: [5]\nmax_rows: 500\nfolds: 2\n",
}
# beyond one per kind: fusion over every kind of input (audio, dynamic, KELM), for ``abaw predict`` (VA only: cheap)
EXTRA_SPECS: dict[str, str] = {
    "conf_dwf_all": "kind: dwf\ntasks: [va]\ninputs: [conf_audio, conf_dynamic, conf_kelm]\nsamples: 10\nfolds: 2\n",
}
