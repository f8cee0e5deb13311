"""Packaging for sb3-swfp. Torch is a range: bring your own build (CPU or CUDA)."""

from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="sb3-swfp",
    version="0.1.0",
    description="Stepwise Flow Policy (SWFP): flow-matching policies with online JKO fine-tuning for Stable-Baselines3",
    long_description=long_description,
    long_description_content_type="text/markdown",
    packages=find_packages(include=["sb3_swfp", "sb3_swfp.*"]),
    package_data={"sb3_swfp": ["py.typed"]},
    python_requires=">=3.10",
    install_requires=[
        "stable-baselines3>=2.7,<3",
        "torch>=2.3,<3",
        "gymnasium>=1.0,<2",
        "numpy>=1.24",
    ],
    extras_require={
        "tests": ["pytest>=7", "pytest-xdist", "tensorboard", "tqdm", "rich"],
        "zoo": ["rl_zoo3>=2.7", "sb3-contrib>=2.7", "optuna>=3", "pyyaml"],
        "demos": ["minari>=0.5", "imitation"],
        "examples": ["matplotlib", "tensorboard", "tqdm", "rich"],
        "mujoco": ["gymnasium[mujoco]>=1.0,<2"],
    },
    license="MIT",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
