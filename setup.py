"""tfkd: knowledge distillation of BERT-style models from intermediate representations."""

from setuptools import find_packages, setup

setup(
    name="tfkd",
    version="0.1.0",
    description="Compress BERT-style models by distilling intermediate representations (TensorFlow/Keras 3).",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfkd", "tfkd.*"]),
    python_requires=">=3.10,<3.13",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<3.16",
        # keras-nlp is only an alias of keras-hub now; tfkd depends on keras-hub itself.
        "keras-hub>=0.32,<0.33",
        "tensorflow-text>=2.21,<2.22",
        "tensorflow-datasets>=4.9.10,<4.10",
        # tensorflow-datasets 4.9.10 imports it lazily without declaring it.
        "importlib_resources>=6",
        "tensorboard>=2.21,<2.22",
        "absl-py>=2.1",
        # keras-hub needs it to read Hugging Face checkpoint directories.
        "safetensors>=0.4",
        "numpy>=1.26,<3",
        "ai-edge-litert>=2.3,<2.4",
        "tensorflow-serving-api>=2.21,<2.22",
        "matplotlib>=3.8",
    ],
    extras_require={"test": ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "pytest-xdist>=3.5"]},
    entry_points={"console_scripts": ["tfkd-train=tfkd.cli.train:run", "tfkd-export=tfkd.cli.export:run", "tfkd-pretrain=tfkd.cli.pretrain:run", "tfkd-evaluate=tfkd.cli.evaluate:run", "tfkd-report=tfkd.cli.report:run", "tfkd-predict=tfkd.cli.predict:run"]},
)
