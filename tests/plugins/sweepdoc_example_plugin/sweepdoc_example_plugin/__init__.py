"""An example sweepdoc plugin package: ``tiny_cnn`` (a model) and ``blobs`` (a dataset).

Each module is what its entry point names: a ``build`` (model) or ``load`` (dataset)
function and an ``Options`` pydantic model of its options. Installed where sweepdoc runs
(the server and every worker), a study reaches them as ``model: {arch: "plugin:tiny-cnn"}``
and ``dataset: "plugin:blobs"``.
"""
