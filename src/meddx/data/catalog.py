"""The dataset catalog: what each public dataset is, where it comes from, and where it lives.

Every dataset meddx knows by name is described by a static :class:`DatasetSpec` in :data:`CATALOG`:
its folder under the data directory, its kind (which reader family applies), its task, licence,
citation, class names and the files it consists of, each with an official download URL and
checksums (:class:`RemoteFile`). Datasets that ship as one big archive (MSD) instead name a
:class:`RemoteArchive` and are checked for presence with glob patterns (``expected_glob`` +
``min_files``) rather than a list of hundreds of files.

The data directory is ``--data-dir``, else ``$MEDDX_DATA_DIR``, else the user cache directory
(:func:`resolve_data_dir`). :func:`locate` finds a dataset's folder without touching the network;
:func:`fetch` downloads whatever is missing and verifies checksums of what is already there.

Checksums and sizes come from each shared dataset folder's README (SHA-256) and, for MedMNIST, from
the ``medmnist`` package's ``INFO`` (MD5). Where the official distribution is not the same bytes
(the UCR archive, MoleculeNet's gzipped CSVs, Kaggle), the URL is the pinned-commit copy named in
the README, so that the recorded SHA-256 can be verified; ``homepage`` points to the official page.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from platformdirs import user_cache_dir

from meddx.data.download import download_file, extract_archive, file_digests, sha256_file
from meddx.errors import DatasetNotFoundError, DownloadError, InputFileError

__all__ = [
    "CATALOG",
    "DATA_DIR_ENV",
    "KINDS",
    "TASKS",
    "DatasetSpec",
    "RemoteArchive",
    "RemoteFile",
    "fetch",
    "file_checksums",
    "get_spec",
    "is_present",
    "list_datasets",
    "locate",
    "missing_files",
    "resolve_data_dir",
    "verify_file",
]

log = logging.getLogger(__name__)

DATA_DIR_ENV = "MEDDX_DATA_DIR"
"""Environment variable naming the data directory (overridden by an explicit ``data_dir``)."""

KINDS = frozenset({"medmnist", "msd", "ucr", "wfdb", "csv", "text", "dicom"})
"""Reader families. A new modality adds a kind here and a reader elsewhere."""

TASKS = frozenset(
    {"classification", "multilabel-classification", "regression", "segmentation", "samples"}
)
"""What a dataset is for; ``samples`` = example files for reader tests, no learning task."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset and where to download it.

    Attributes:
        name: Path relative to the dataset folder, ``/``-separated (e.g. ``"imagesTr/x.nii.gz"``).
        url: Official download URL of exactly these bytes.
        sha256: Expected SHA-256 hex digest, or None when unknown.
        md5: Expected MD5 hex digest (as published by some sources), or None.
        size: Expected size in bytes, or None when unknown.
    """

    name: str
    url: str
    sha256: str | None
    md5: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class RemoteArchive(RemoteFile):
    """A tar/zip archive that unpacks into a dataset folder.

    Attributes:
        root: Top-level folder inside the archive whose content becomes the dataset folder
            (e.g. ``"Task04_Hippocampus"``); None to extract the archive as it is.
        exclude: :mod:`fnmatch` patterns of member names to skip (macOS resource forks...).
    """

    root: str | None = None
    exclude: tuple[str, ...] = ("._*", ".DS_Store", "__MACOSX")


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class DatasetSpec:
    """Static description of a public dataset.

    Attributes:
        name: Catalog name used on the command line (``meddx datasets fetch NAME``).
        folder: Folder name under the data directory.
        kind: Reader family, one of :data:`KINDS`.
        task: One of :data:`TASKS`.
        description: One line for listings.
        license: Licence of the data, as declared by its source.
        citation: What to cite when using it.
        files: Files to download and check individually.
        class_names: Class names in label-index order (label ``i`` is ``class_names[i]``), or None.
        homepage: Official page of the dataset.
        archive: Archive to download and unpack when ``expected_glob`` is not satisfied.
        expected_glob: Glob patterns (relative to the folder) for datasets too big to list file by
            file; each must match at least ``min_files`` files for the dataset to be present.
        min_files: Minimum matches per ``expected_glob`` pattern.
        extra: Kind-specific facts for readers (e.g. ``spatial_dims``, ``label_values``,
            ``target``); read-only.
    """

    name: str
    folder: str
    kind: str
    task: str
    description: str
    license: str
    citation: str
    files: tuple[RemoteFile, ...] = ()
    class_names: tuple[str, ...] | None = None
    homepage: str = ""
    archive: RemoteArchive | None = None
    expected_glob: tuple[str, ...] = ()
    min_files: int = 1
    extra: Mapping[str, Any] = field(default_factory=_frozen, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"{self.name}: unknown kind {self.kind!r} (expected one of {sorted(KINDS)})"
            )
        if self.task not in TASKS:
            raise ValueError(
                f"{self.name}: unknown task {self.task!r} (expected one of {sorted(TASKS)})"
            )
        if not self.files and not self.expected_glob:
            raise ValueError(f"{self.name}: a spec needs files or expected_glob to check presence")
        if self.expected_glob and not (self.archive or self.files):
            raise ValueError(f"{self.name}: expected_glob needs an archive to download from")
        if not isinstance(self.extra, MappingProxyType):
            # Keep the catalog immutable even when a caller passes a plain dict.
            object.__setattr__(self, "extra", _frozen(self.extra))


# --------------------------------------------------------------------------------------------
# Catalog entries
# --------------------------------------------------------------------------------------------

_MEDMNIST_URL = "https://zenodo.org/records/10519652/files/{name}?download=1"
_MEDMNIST_CITATION = (
    "Yang J. et al., MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical"
    " image classification, Scientific Data 10, 41 (2023)"
)
_MEDMNIST_HOME = "https://medmnist.com/"


def _github_raw(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def _medmnist(
    name: str,
    folder: str,
    file: str,
    *,
    sha256: str,
    md5: str,
    size: int,
    description: str,
    class_names: tuple[str, ...],
    citation: str,
    spatial_dims: int,
    split_sizes: Mapping[str, int],
) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        folder=folder,
        kind="medmnist",
        task="classification",
        description=description,
        license="CC BY 4.0",
        citation=citation,
        files=(
            RemoteFile(file, _MEDMNIST_URL.format(name=file), sha256=sha256, md5=md5, size=size),
        ),
        class_names=class_names,
        homepage=_MEDMNIST_HOME,
        extra={"spatial_dims": spatial_dims, "split_sizes": dict(split_sizes)},
    )


_MITDB_URL = "https://physionet.org/files/mitdb/1.0.0/{name}"
# (file, sha256, size) of the de Chazal DS1 records, from the shared folder's README.
_MITDB_DS1_FILES: tuple[tuple[str, str, int], ...] = (
    ("101.atr", "441cdd6486cfdf4c53e344d1048ab81296773e7058d53069022adc68543a0663", 3768),
    ("101.dat", "698d1ea6f472d23ca50317c72c96cda2698badd8578220ed0380cdf241e39006", 1950000),
    ("101.hea", "bc8dfbf076c5635bfe5319bba1aa5244dd32fac8d142476396a41f597d47f686", 126),
    ("106.atr", "585347e6d1bd3ad89cdb52cb80945878a5e51026d81f871a376bb6e13936f7fa", 5476),
    ("106.dat", "c017bc18b95b1f970bca143a044ee5d54168648b541e47aa656f2737a59c1202", 1950000),
    ("106.hea", "edda68c7de6d1101b23d4f71822dd5660f48db02e8184e048a617a2d60addfe0", 152),
    ("108.atr", "ea227008ac3bc4ada87807117909e77ae0643d5a8bc09f32b9096a35f140cbf3", 3742),
    ("108.dat", "229a4ef62679dc5c6ea781bfbaec2bd784151fc9f9517f4cdecd533a9431eb20", 1950000),
    ("108.hea", "2cb0924c50f6e1a5b48c77150cc4da07831ca0eb93d1d5f0a13341b834832c69", 303),
    ("109.atr", "2eef456587bab17263a126063321c040affa29bc4ccfdf2a2bc7fe50709fa1b8", 5080),
    ("109.dat", "267afd6ced7a1fd5a8bcd21fcc2b83287e37e3ef57f32e8a0fe39a6e021951cd", 1950000),
    ("109.hea", "a6bce66705571919ccdf600a1fd608909f32cfb8503c88b7f982b5cf4bd3a075", 189),
    ("112.atr", "69cf7ee24d65a5430162ae9b6452be9d4855c2af47f91976b7f02038ea115002", 5118),
    ("112.dat", "3c7af9758687314255b5d946a58d9509d53ecf2a300230684fa8ecf00b774bdb", 1950000),
    ("112.hea", "85fb50d4266532034441c15836fa39912793cfa5e4dc76dd5325036e00f8767a", 192),
    ("114.atr", "5280acb082b654d64944137987a00fbc2105b3a3fcdda75d0bf11d4644e40d9f", 3878),
    ("114.dat", "2ae83463edcfec256b79ce93716dcb40f289bacbe9e5e7a66cd00d0a31099d4b", 1950000),
    ("114.hea", "ed7dd8ae360cc5badf544e3b97161c7a327600926e87ac2d86222cb82a1c0478", 154),
    ("115.atr", "4980667b19b7a637729d40762f071b483d69f5431db818cbddc9a8ae64cc4da2", 3946),
    ("115.dat", "34185efe9889608c76ebfbf5a467d3457970c6d11b77a2bf81b94bcf46e07c41", 1950000),
    ("115.hea", "4f41f62fd60b092afc3f1dd312dee3ed991aff64e4ffcc6a69414d38db2b7d2e", 121),
    ("116.atr", "abd31e2c878073e67319d5a6fa34923fe117cca02e5c80318378405c853ccbef", 4858),
    ("116.dat", "0ab38cfca76d816673213dcd570504bb3ab02ef76d51540fd7a6075bc580ad85", 1950000),
    ("116.hea", "5b4baa75858f44e207c8c2dd434d2518f5f06f6dad7679e1ec5c23860d8fa418", 152),
    ("118.atr", "77afd5400648d128223d5029a49c442f5abd65ba997f732489cb8eed39d71551", 4622),
    ("118.dat", "66ea4b70b7d64abd0f49089ae1b8f0f577664c46e5b29ac23b291934e063df15", 1950000),
    ("118.hea", "331013824d0cebbb82fa290ced889b1cb79d8d91d4c4e0f5fd8c445bafc10642", 161),
    ("119.atr", "fd919c8ea20eed4a22fb37984977f30ce48d382eefd2d90934bf947a88e0fd7b", 4812),
    ("119.dat", "02a286a28e69b441568add915f16a2856b22bab893bf8729ee9654411ed3a5aa", 1950000),
    ("119.hea", "587152d9e7767ef9854e5a923f3a8e7715aad738ca8ee7e29373ce394dd6843e", 152),
    ("122.atr", "34966d92a94c72126253c0297407cff78e53be1f72c6814e28676bcda8be90de", 4970),
    ("122.dat", "a700c794bfe23565603d75dc5706915f5436e522802d260e758683d11f5b9e13", 1950000),
    ("122.hea", "1c1bfe1f2e3a4deed75852f2917457aaf598a1f7e27c397863909b4844a30192", 215),
    ("124.atr", "f9c8cac368f1f6ba8895ae47f5771c82597374c1e6b030385ca2eb186454677c", 3360),
    ("124.dat", "296988e49d2653eb499ad0b17c46826b4296b7eaf94df3f76f1ba2dcdf6bc48b", 1950000),
    ("124.hea", "3338829e3c05b0bc866bc1106a7efa34921f717069fce9f774c816fcef3bf566", 213),
    ("201.atr", "df1276b6c6952b177ec6eea2be3edc7a96888454107a3ee56be880b0afaf6f35", 4322),
    ("201.dat", "16610ae46eff900794597503d15af4572a8b1518f18dbed2843b7e68c81f3898", 1950000),
    ("201.hea", "63aa786bf11ebcb19b104a0509ebf32e915d8db357340496e98dbf1bae263404", 277),
    ("203.atr", "2573f948e54a538983a44bf946e3e61cdda60e898b4c65ca8559b57c4877c706", 7094),
    ("203.dat", "5ba7d2237fc838438efd8bb0a3baeffc5de2e70c76e3ab7e401e811ad82f43e0", 1950000),
    ("203.hea", "5a1c8fead3de629bd15a64deeceab18c4f9b6a2ed480aa623094474792d2aba0", 414),
    ("205.atr", "0ae55e31175b9ba36e09c3b556b15e3e70f254936a2634d5ff341dfb86a74ea9", 5436),
    ("205.dat", "8a513c39e6d9a1d732de0b3909a87aa1fcfd4bd55ab5f59a5b810967d252af36", 1950000),
    ("205.hea", "818f9ad506b611d7736722aca1924736b20acd0265f84b0b0e670128d0582ee6", 216),
    ("207.atr", "cceb64d68033a277d2d5669458d49258295102dd3e20614a0ca7d63b67009404", 4958),
    ("207.dat", "139f99250366fbf347cba4d8ea1fbe788f98cb1b93b70f50ccba70122d908605", 1950000),
    ("207.hea", "8b6fc3cbf71ccdf871109506af8ab664dde64c8a35d3bab43f8ace9dc7bd0a2b", 535),
    ("208.atr", "33878519ee34d00cb233fdb15b11c2b8da0b0aea2e643d31b07105cc3392edf4", 8578),
    ("208.dat", "22873623623c44ee413a5b60cacb15d4af2723734836fb3ae45d9ff96bdb36e7", 1950000),
    ("208.hea", "64c411f07144519ef0070e7aa7b292ffa2a2a0b63be44ca90bb1ac970cc23cf2", 300),
    ("209.atr", "c0697b176e7caf49e34f93e28eaeeff7167e2de380a8698f6cb3fb3a5fcb1c84", 6288),
    ("209.dat", "e2516dd126ea85529d9a0e8442fef5d880a492d41f0692a76e648c8437f15c5f", 1950000),
    ("209.hea", "caf49bfce1210972355b3c0dd2f04bdab5280aa6c07e7afa9f8ebd3e2d2bfbc6", 152),
    ("215.atr", "94968307b89eb0be766cbb88617f08571ed41b3b25b294d19a72b7ffd2525aee", 6878),
    ("215.dat", "9e28799b5733a2d60470653e6f6ca26610143303233a1b7559cff54e2ad26ef9", 1950000),
    ("215.hea", "392ec1df946967afec9153e7c145791b6c764fb6584d6bfaf8f180c8d503ea73", 249),
    ("220.atr", "9cf9f330823e2a9850d51a7fce1f8ecfe5bb84e80e89412bd9f4de6a67f9ccc7", 4262),
    ("220.dat", "c01ca1a76fb3a89e96134a08f2e5aa6e760eda59ea9086ba8aaa13ba0cca9cff", 1950000),
    ("220.hea", "6ee81d36f4d893f26cb80c499d707a43a299d224745b6f6d24a1cd0906944e08", 127),
    ("223.atr", "beaa5cb3eb5fb64a5f9e1dfcac9297f9564b379c9c354cbf8f9f927d9b81ccf1", 5468),
    ("223.dat", "1d42aa9e13f7349287ae5f0f00b40078c01aadd39e2cad1001ab42d3b7484594", 1950000),
    ("223.hea", "85bd13b12e47a7bbd6d0d128871625b92af860b87c323cbc13cc6da4bf70f0b4", 251),
    ("230.atr", "403d0d4842ba7135b1e14b9e5c50cba214753a0e17bf979090b2c6a8018f7eae", 6386),
    ("230.dat", "fba09ea54d9caa342c54c46e0df247335345b02444f7d15162906adfef55d057", 1950000),
    ("230.hea", "76ab74e86c8494e332149f40f37c47206790e0afca48248a88196d3ac9a443df", 128),
)

_PYDICOM_COMMIT = "fb1f24e4f0418008757766d8e79ec92dc2ab9855"
_PYDICOM_TEST_FILES = "src/pydicom/data/test_files"
# (file in the dataset folder, sha256, size); the series lives under dicomdirtests/ upstream.
_DICOM_SAMPLE_FILES: tuple[tuple[str, str, int], ...] = (
    ("CT_small.dcm", "3dd31e5cc835b3f2cdd46c9da1982f59251e78518fefa8163d914631c66437d6", 39206),
    ("JPEG2000.dcm", "5be539024e6803029a7b73c0f8e72e88d032e3a0bc05922c0c047344780aa8e1", 3308),
    ("MR_small.dcm", "3f27d1c22f1a66e80d7bb7c911e8610fd0bb70325a76746a7adb1c0ddefcf2bb", 9830),
    (
        "MR_small_bigendian.dcm",
        "3e4c8c9fe70de4f3be149bbd673fa56f211c8e8e2ff9bac63f70f9dc31b5d108",
        9708,
    ),
    (
        "MR_small_implicit.dcm",
        "6077442c42a56fc7fcc7db8411a657dded9fc109e6d3275765c4de358292b299",
        9702,
    ),
    (
        "examples_overlay.dcm",
        "112539bc17c0e281987397e827dff9e99890109866d570f08761f83b8f55c277",
        321700,
    ),
    (
        "examples_ybr_color.dcm",
        "6fa3a087d3c631b43216a8abec8aac8d2d73751c5bf5885708d1150b09283f72",
        224902,
    ),
    ("liver_1frame.dcm", "8ac3546185d0c18c193438b47b16c4ef323f0ebe0e8fd071ee1e6d43edef1978", 37084),
    ("rtdose.dcm", "1d6cc092146d093e086a6bcccef4ebb7d097941343f5cd3b6395d157b64e37e4", 7568),
    (
        "series-77654033/CR1/6154",
        "aa4e9ecd9af652e5e17e4452527f079b8e05c776c580b818dc099082713bf750",
        2300,
    ),
    (
        "series-77654033/CR2/6247",
        "eaef958bbd3c38298f34930cf0013c0f5079cc052dcbe82ef26f14f8b113ba69",
        2298,
    ),
    (
        "series-77654033/CR3/6278",
        "c0447f73d8c0d72b58a83b6192cb0f81f8cf80cc3a1571d02ff8f970559cd9ac",
        2298,
    ),
    (
        "series-77654033/CT2/17106",
        "678df720411e86df67031c28e16192cd31e2062a3f090d657b9f16ce86db3f1d",
        3810,
    ),
    (
        "series-77654033/CT2/17136",
        "5b2d0734bfd387e93aea75cf5cdb73a5670cf5914937de636ff69ef5dc720573",
        3812,
    ),
    (
        "series-77654033/CT2/17166",
        "049b221c9b2ee9a4bdd843dddf561dce1db9ad1924f1b83d87bc3c6e74cc9ab7",
        3812,
    ),
    (
        "series-77654033/CT2/17196",
        "e4796e51480a8c73ed717c3300d7384ec92d63e6322edd080d33665ab37365f0",
        3812,
    ),
)


def _pydicom_test_file_url(name: str) -> str:
    remote = name.replace("series-77654033/", "dicomdirtests/77654033/")
    return _github_raw("pydicom/pydicom", _PYDICOM_COMMIT, f"{_PYDICOM_TEST_FILES}/{remote}")


_UCI_HEART_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease/{name}"
_UCR_CITATION = (
    "Dau H.A. et al., The UCR Time Series Archive, IEEE/CAA J. Autom. Sinica 6(6):1293-1305 (2019)"
)
_UCR_LICENSE = "UCR archive: no formal licence; free research use with citation"

_SPECS: tuple[DatasetSpec, ...] = (
    _medmnist(
        "pneumoniamnist",
        "medmnist-pneumoniamnist",
        "pneumoniamnist.npz",
        sha256="e1792d3f03751cb101e99f19a63b3c1941436c988665f47853417b05be250cd8",
        md5="28209eda62fecd6e6a2d98b1501bb15f",
        size=4170669,
        description="PneumoniaMNIST 28x28 chest X-rays, normal vs pneumonia (4708/524/624)",
        class_names=("normal", "pneumonia"),
        citation=_MEDMNIST_CITATION + "; Kermany D.S. et al., Cell 172(5):1122-1131 (2018)",
        spatial_dims=2,
        split_sizes={"train": 4708, "val": 524, "test": 624},
    ),
    _medmnist(
        "breastmnist",
        "medmnist-breastmnist",
        "breastmnist.npz",
        sha256="3a22d2a4625e7dd8903f0f59030e81a3d0c222bece2e5e10927456cb50efdec1",
        md5="750601b1f35ba3300ea97c75c52ff8f6",
        size=559580,
        description="BreastMNIST 28x28 breast ultrasound, malignant vs normal+benign (546/78/156)",
        class_names=("malignant", "normal_or_benign"),
        citation=_MEDMNIST_CITATION + "; Al-Dhabyani W. et al., Data in Brief 28:104863 (2020)",
        spatial_dims=2,
        split_sizes={"train": 546, "val": 78, "test": 156},
    ),
    _medmnist(
        "adrenalmnist3d",
        "medmnist-adrenalmnist3d",
        "adrenalmnist3d.npz",
        sha256="8ffd78c0f000265deb7cf4ee0b454136fb3170f9839ecaa7bb01adf9f88aa7d1",
        md5="bbd3c5a5576322bc4cdfea780653b1ce",
        size=276833,
        description="AdrenalMNIST3D 28^3 adrenal masks (CT), normal vs hyperplasia (1188/98/298)",
        class_names=("normal", "hyperplasia"),
        citation=_MEDMNIST_CITATION,
        spatial_dims=3,
        split_sizes={"train": 1188, "val": 98, "test": 298},
    ),
    _medmnist(
        "adrenalmnist3d_64",
        "medmnist-adrenalmnist3d",
        "adrenalmnist3d_64.npz",
        sha256="124a53ea2c66c8ac1985a4c98ea6f34d1ab35bdab1dc50947f80d4a87e54057d",
        md5="17721accfe9fb005146a47d33bc54b2f",
        size=1880591,
        description="AdrenalMNIST3D 64^3 (MedMNIST+), same cases and split as adrenalmnist3d",
        class_names=("normal", "hyperplasia"),
        citation=_MEDMNIST_CITATION,
        spatial_dims=3,
        split_sizes={"train": 1188, "val": 98, "test": 298},
    ),
    DatasetSpec(
        name="msd-task04-hippocampus",
        folder="msd-task04-hippocampus",
        kind="msd",
        task="segmentation",
        description="MSD Task04 Hippocampus, 3D T1 MRI crops (.nii.gz), anterior/posterior labels",
        license="CC BY-SA 4.0",
        citation=(
            "Simpson A.L. et al., arXiv:1902.09063 (2019); Antonelli M. et al., The Medical"
            " Segmentation Decathlon, Nature Communications 13, 4128 (2022)"
        ),
        class_names=("background", "anterior", "posterior"),
        homepage="http://medicaldecathlon.com/",
        # MD5 as used by MONAI's DecathlonDataset for this mirror; SHA-256 not published.
        archive=RemoteArchive(
            "Task04_Hippocampus.tar",
            "https://msd-for-monai.s3-us-west-2.amazonaws.com/Task04_Hippocampus.tar",
            sha256=None,
            md5="9d24dba78a72977dbd1d2e110310f31b",
            root="Task04_Hippocampus",
        ),
        # The shared developer folder holds 202 of the 260 training cases; the official archive
        # holds all 260, so 202 per pattern is the minimum for either to count as present.
        expected_glob=("imagesTr/hippocampus_*.nii.gz", "labelsTr/hippocampus_*.nii.gz"),
        min_files=202,
        extra={
            "image_glob": "imagesTr/hippocampus_*.nii.gz",
            "label_dir": "labelsTr",
            "spatial_dims": 3,
            "spacing": (1.0, 1.0, 1.0),
        },
    ),
    DatasetSpec(
        name="ecg200",
        folder="ecg200-ucr",
        kind="ucr",
        task="classification",
        description="UCR ECG200 heartbeats (length 96), abnormal (MI) vs normal, 100/100",
        license=_UCR_LICENSE,
        citation=_UCR_CITATION + "; Olszewski R.T., PhD thesis, Carnegie Mellon University (2001)",
        files=tuple(
            RemoteFile(
                name,
                _github_raw(
                    "ehsan-honarbakhsh/Streaming-Downsampling",
                    "df0e4fffeac7ab02c3f843c72ecc9f9678b1f361",
                    f"ECG-Dataset/{name}",
                ),
                sha256=sha,
                size=155300,
            )
            for name, sha in (
                (
                    "ECG200_TRAIN.txt",
                    "a81521c4fdcded0bbb47334136bc4a6bf7dd8cdf8c8d5877b36d207146f55151",
                ),
                (
                    "ECG200_TEST.txt",
                    "907c243f6e92234fc3a249448240e95db292835217457a2bc4cbe3d73a02902d",
                ),
            )
        ),
        class_names=("abnormal", "normal"),
        homepage="https://www.cs.ucr.edu/~eamonn/time_series_data_2018/",
        extra={
            "splits": {"train": "ECG200_TRAIN.txt", "test": "ECG200_TEST.txt"},
            "label_values": (-1, 1),
            "series_length": 96,
        },
    ),
    DatasetSpec(
        name="ecg5000",
        folder="ecg5000-ucr-trainsplit",
        kind="ucr",
        task="classification",
        description="UCR ECG5000 heartbeats (length 140), 5 classes; official TRAIN split only",
        license=_UCR_LICENSE + "; underlying PhysioNet chfdb record under ODC-By 1.0",
        citation=_UCR_CITATION + "; Chen Y. et al., DMKD 29(6) (2015)",
        files=(
            RemoteFile(
                "ECG5000_TRAIN.txt",
                _github_raw(
                    "nina-prog/sem-data-analysis-VAE",
                    "6a57b237f289bb1a237621c2d7f9ee455c080e55",
                    "ECG5000/ECG5000_TRAIN.txt",
                ),
                sha256="64a73c47d5c785c9e87f2e07c71a985f451bd28e1120bfbdb91400401a09ec87",
                size=1128501,
            ),
        ),
        class_names=("normal", "r_on_t_pvc", "pvc", "sp_or_eb", "unclassified"),
        homepage="https://www.cs.ucr.edu/~eamonn/time_series_data_2018/",
        extra={
            "splits": {"train": "ECG5000_TRAIN.txt"},
            "label_values": (1, 2, 3, 4, 5),
            "series_length": 140,
        },
    ),
    DatasetSpec(
        name="mitdb-ds1",
        folder="mitdb-arrhythmia-ds1",
        kind="wfdb",
        task="classification",
        description="MIT-BIH Arrhythmia DB, 22 two-lead 30-min records (de Chazal DS1), AAMI beats",
        license="ODC-By 1.0",
        citation=(
            "Moody G.B., Mark R.G., IEEE Eng. Med. Biol. 20(3):45-50 (2001); Goldberger A.L."
            " et al., Circulation 101(23):e215-e220 (2000); split: de Chazal P. et al., IEEE TBME"
            " 51(7):1196-1206 (2004)"
        ),
        files=tuple(
            RemoteFile(name, _MITDB_URL.format(name=name), sha256=sha, size=size)
            for name, sha, size in _MITDB_DS1_FILES
        ),
        class_names=("N", "S", "V", "F", "Q"),
        homepage="https://physionet.org/content/mitdb/1.0.0/",
        extra={
            "records": tuple(sorted({name.split(".")[0] for name, _, _ in _MITDB_DS1_FILES})),
            "annotation_extension": "atr",
            "sampling_rate_hz": 360,
            # AAMI EC57 beat classes from MIT-BIH annotation symbols.
            "aami_map": {
                "N": ("N", "L", "R", "e", "j"),
                "S": ("A", "a", "J", "S"),
                "V": ("V", "E"),
                "F": ("F",),
                "Q": ("/", "f", "Q"),
            },
        },
    ),
    DatasetSpec(
        name="pima-diabetes",
        folder="pima-indians-diabetes",
        kind="csv",
        task="classification",
        description="Pima Indians diabetes, 768 patients x 8 clinical features, 5-year onset",
        license="CC0 per Kaggle (not re-verified)",
        citation="Smith J.W. et al., Proc. Symp. Comput. Appl. Med. Care, 261-265 (1988)",
        files=(
            RemoteFile(
                "diabetes.csv",
                _github_raw(
                    "AlaSushanth/Diabetes_Prediction_Model",
                    "1761cdec766dab9b13fd932d482b2cd6cfa02d51",
                    "dataset/diabetes.csv",
                ),
                sha256="698c203a14aa31941d2251175330c9199f3ccdb31597abbba2a3e35416257a72",
                size=23873,
            ),
        ),
        class_names=("no_diabetes", "diabetes"),
        homepage="https://www.kaggle.com/datasets/uciml/pima-indians-diabetes-database",
        extra={
            "table": "diabetes.csv",
            "target": "Outcome",
            # Physiologically impossible zeros encode missing values in these columns.
            "zero_means_missing": ("Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI"),
        },
    ),
    DatasetSpec(
        name="heart-disease-va-switzerland",
        folder="uci-heart-disease-va-switzerland",
        kind="csv",
        task="classification",
        description="UCI heart disease, Long Beach VA (200) + Switzerland (123), 14 attributes",
        license="CC BY 4.0 per UCI (not re-verified)",
        citation=(
            "Janosi A., Steinbrunn W., Pfisterer M., Detrano R., UCI Heart Disease (1988);"
            " Detrano R. et al., Am. J. Cardiol. 64(5):304-310 (1989)"
        ),
        files=tuple(
            RemoteFile(name, _UCI_HEART_URL.format(name=name), sha256=sha, size=size)
            for name, sha, size in (
                (
                    "processed.va.data",
                    "e7c93d8d0d2acdadfa4c5e8de768e2191e7f618b952e29623f1f0d5949ff6b8f",
                    6737,
                ),
                (
                    "processed.switzerland.data",
                    "834a405ccf5b66ab4056bb77794adc8df0b7125186454c0a1d002d33c6c3b314",
                    4109,
                ),
                (
                    "heart-disease.names",
                    "ec7ed5aa4ed8321097808f47b836301c2a0c36f3bb09c40b8b43b622363e6b61",
                    10060,
                ),
            )
        ),
        # The common binarisation of `num` (0 vs 1-4).
        class_names=("no_disease", "disease"),
        homepage="https://archive.ics.uci.edu/dataset/45/heart+disease",
        extra={
            "tables": ("processed.va.data", "processed.switzerland.data"),
            "columns": (
                "age",
                "sex",
                "cp",
                "trestbps",
                "chol",
                "fbs",
                "restecg",
                "thalach",
                "exang",
                "oldpeak",
                "slope",
                "ca",
                "thal",
                "num",
            ),
            "header": False,
            "missing_values": ("?",),
            "target": "num",
            "binarise_target": "num > 0",
        },
    ),
    DatasetSpec(
        name="symptom2disease",
        folder="symptom2disease",
        kind="text",
        task="classification",
        description="Symptom2Disease, 1200 first-person symptom texts, 24 diseases x 50",
        license="NOT VERIFIED (Kaggle page); check before redistributing",
        citation="Symptom2Disease, Kaggle dataset by niyarrbarman (2023)",
        files=(
            RemoteFile(
                "Symptom2Disease.csv",
                _github_raw(
                    "ZHOU-henry/online-Medical-chatbot",
                    "0a6f531a9a1c71c2110a7533366519a72b2c6d2f",
                    "Symptom2Disease_1.csv",
                ),
                sha256="00c14a2f38c041179d24a91de80c4b3a9d105f58982aa52e96a7226ca994dba8",
                size=229852,
            ),
        ),
        class_names=(
            "Acne",
            "Arthritis",
            "Bronchial Asthma",
            "Cervical spondylosis",
            "Chicken pox",
            "Common Cold",
            "Dengue",
            "Dimorphic Hemorrhoids",
            "Fungal infection",
            "Hypertension",
            "Impetigo",
            "Jaundice",
            "Malaria",
            "Migraine",
            "Pneumonia",
            "Psoriasis",
            "Typhoid",
            "Varicose Veins",
            "allergy",
            "diabetes",
            "drug reaction",
            "gastroesophageal reflux disease",
            "peptic ulcer disease",
            "urinary tract infection",
        ),
        homepage="https://www.kaggle.com/datasets/niyarrbarman/symptom2disease",
        extra={"table": "Symptom2Disease.csv", "text_column": "text", "label_column": "label"},
    ),
    DatasetSpec(
        name="dicom-samples",
        folder="dicom-samples",
        kind="dicom",
        task="samples",
        description="16 small real DICOM files (CT, MR, NM J2K, US multi-frame, RTDOSE, SEG...)",
        license="MIT (pydicom repository); NEMA WG04 public sample images",
        citation="pydicom test files (https://github.com/pydicom/pydicom)",
        files=tuple(
            RemoteFile(name, _pydicom_test_file_url(name), sha256=sha, size=size)
            for name, sha, size in _DICOM_SAMPLE_FILES
        ),
        homepage="https://github.com/pydicom/pydicom",
    ),
    DatasetSpec(
        name="tox21",
        folder="moleculenet-tox21",
        kind="csv",
        task="multilabel-classification",
        description="MoleculeNet Tox21, 7831 SMILES x 12 binary toxicity assays (missing labels)",
        license="no explicit licence (US federal data; not formally verified)",
        citation="Wu Z. et al., MoleculeNet, Chem. Sci. 9:513-530 (2018); Tox21 Challenge 2014",
        files=(
            RemoteFile(
                "tox21.csv",
                _github_raw(
                    "Baukmeister/molecular_toxicity",
                    "ca1d6a2f282ff114170b67f0af47cea4b4081943",
                    "data/tox21.csv",
                ),
                sha256="b1346d5bc675c97c555b372e5845dc7de3b5d04734c290189a4accd77dbd1b43",
                size=525119,
            ),
        ),
        class_names=(
            "NR-AR",
            "NR-AR-LBD",
            "NR-AhR",
            "NR-Aromatase",
            "NR-ER",
            "NR-ER-LBD",
            "NR-PPAR-gamma",
            "SR-ARE",
            "SR-ATAD5",
            "SR-HSE",
            "SR-MMP",
            "SR-p53",
        ),
        homepage="https://moleculenet.org/datasets-1",
        extra={"table": "tox21.csv", "smiles_column": "smiles", "id_column": "mol_id"},
    ),
    DatasetSpec(
        name="esol",
        folder="moleculenet-esol",
        kind="csv",
        task="regression",
        description="MoleculeNet ESOL (Delaney), 1128 SMILES, measured log aqueous solubility",
        license="no explicit licence (not formally verified)",
        citation=(
            "Delaney J.S., J. Chem. Inf. Comput. Sci. 44(3):1000-1005 (2004); Wu Z. et al.,"
            " MoleculeNet, Chem. Sci. 9:513-530 (2018)"
        ),
        files=(
            RemoteFile(
                "delaney-processed.csv",
                _github_raw(
                    "deepchem/deepchem",
                    "fbe3b911a94a6eb8c84c1a9e7ac67a472c49ea80",
                    "datasets/delaney-processed.csv",
                ),
                sha256="8c06a76f0c6487d29ab0f903e6a7a7139f189ab3c1178f159c8be8964602f189",
                size=96699,
            ),
        ),
        homepage="https://moleculenet.org/datasets-1",
        extra={
            "table": "delaney-processed.csv",
            "smiles_column": "smiles",
            "target": "measured log solubility in mols per litre",
        },
    ),
)

CATALOG: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}
"""Every dataset meddx knows by name."""


# --------------------------------------------------------------------------------------------
# Lookup and presence
# --------------------------------------------------------------------------------------------


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the data directory: ``data_dir``, else ``$MEDDX_DATA_DIR``, else the user cache.

    The folder is not created here (reading must work on read-only shares); :func:`fetch`
    creates what it writes.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(user_cache_dir("meddx")) / "data"


def get_spec(name: str) -> DatasetSpec:
    """Return the catalog entry ``name``.

    Raises:
        DatasetNotFoundError: ``name`` is not in the catalog; the message lists the known names
            and suggests the closest one.
    """
    try:
        return CATALOG[name]
    except (KeyError, TypeError):
        pass
    known = sorted(CATALOG)
    close = difflib.get_close_matches(str(name).lower(), known, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise DatasetNotFoundError(
        f"unknown dataset '{name}'.{hint} Known datasets: {', '.join(known)}."
    ) from None


def _spec_of(name_or_spec: str | DatasetSpec) -> DatasetSpec:
    return name_or_spec if isinstance(name_or_spec, DatasetSpec) else get_spec(name_or_spec)


def missing_files(
    name_or_spec: str | DatasetSpec, data_dir: str | os.PathLike[str] | None = None
) -> list[str]:
    """List what is missing for a dataset to be present (cheap: no hashing).

    A listed file counts as present when it exists with the expected size; an ``expected_glob``
    pattern when it matches at least ``min_files`` files.

    Returns:
        Human-readable descriptions of missing items; empty when the dataset is present.
    """
    spec = _spec_of(name_or_spec)
    folder = resolve_data_dir(data_dir) / spec.folder
    missing: list[str] = []
    for remote in spec.files:
        path = folder / remote.name
        if not path.is_file():
            missing.append(remote.name)
        elif remote.size is not None and path.stat().st_size != remote.size:
            missing.append(f"{remote.name} (size {path.stat().st_size}, expected {remote.size})")
    for pattern in spec.expected_glob:
        count = sum(1 for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else 0
        if count < spec.min_files:
            missing.append(f"{pattern} ({count} files, expected at least {spec.min_files})")
    return missing


def is_present(
    name_or_spec: str | DatasetSpec, data_dir: str | os.PathLike[str] | None = None
) -> bool:
    """True when all files of the dataset are in the data directory (:func:`missing_files`)."""
    return not missing_files(name_or_spec, data_dir)


def list_datasets(data_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Describe every catalog entry and whether it is present in the data directory.

    Returns:
        One dict per dataset, sorted by name, with keys ``name``, ``kind``, ``task``,
        ``description``, ``present`` (bool) and ``path`` (str, the dataset folder).
    """
    root = resolve_data_dir(data_dir)
    return [
        {
            "name": spec.name,
            "kind": spec.kind,
            "task": spec.task,
            "description": spec.description,
            "present": is_present(spec, root),
            "path": str(root / spec.folder),
        }
        for spec in sorted(CATALOG.values(), key=lambda s: s.name)
    ]


def locate(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder of a dataset that is present in the data directory.

    Never touches the network.

    Raises:
        DatasetNotFoundError: Unknown name, or files are missing; the message says how to fetch
            the dataset or where to point the data directory.
    """
    spec = get_spec(name)
    root = resolve_data_dir(data_dir)
    missing = missing_files(spec, root)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise DatasetNotFoundError(
            f"dataset '{name}' is not in the data directory {root} (missing in"
            f" {root / spec.folder}: {shown}). Run `meddx datasets fetch {name}` to download it, or"
            f" point --data-dir / {DATA_DIR_ENV} at a directory that holds {spec.folder}/."
        )
    return root / spec.folder


# --------------------------------------------------------------------------------------------
# Checksums and fetching
# --------------------------------------------------------------------------------------------


def verify_file(path: str | os.PathLike[str], remote: RemoteFile) -> str | None:
    """Check a local file against its catalog entry.

    Returns:
        None when size and checksum(s) match (or are unknown), else what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        return "file not found"
    if remote.size is not None and path.stat().st_size != remote.size:
        return f"size {path.stat().st_size} bytes, expected {remote.size}"
    algorithms = [a for a, v in (("sha256", remote.sha256), ("md5", remote.md5)) if v]
    if not algorithms:
        return None
    digests = file_digests(path, algorithms)
    for algorithm in algorithms:
        expected = getattr(remote, algorithm).lower()
        if digests[algorithm] != expected:
            return f"{algorithm} {digests[algorithm]}, expected {expected}"
    return None


def file_checksums(
    folder: str | os.PathLike[str], names: Iterable[str | os.PathLike[str]]
) -> dict[str, str]:
    """SHA-256 of files in a folder, for provenance records.

    Args:
        folder: Base folder.
        names: Paths relative to ``folder`` (absolute paths are used as they are).

    Returns:
        ``{relative posix path: sha256}``, sorted by path.

    Raises:
        InputFileError: A file is missing or unreadable.
    """
    folder = Path(folder)
    out: dict[str, str] = {}
    for name in names:
        path = folder / name
        try:
            key = path.relative_to(folder).as_posix()
        except ValueError:  # absolute path outside the folder
            key = path.as_posix()
        out[key] = sha256_file(path)
    return dict(sorted(out.items()))


def fetch(name: str, data_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """Make a dataset present in the data directory, downloading only what is missing.

    Files already present are verified against their checksums; a file that fails is downloaded
    again (atomically replaced). Datasets described by an archive are downloaded and unpacked
    when their ``expected_glob`` patterns are not satisfied.

    Args:
        name: Catalog name.
        data_dir: Data directory (see :func:`resolve_data_dir`).
        progress: Show progress bars.

    Returns:
        The dataset folder.

    Raises:
        DatasetNotFoundError: Unknown name.
        DownloadError: A download failed, a checksum did not match, or the dataset is still
            incomplete afterwards.
    """
    spec = get_spec(name)
    root = resolve_data_dir(data_dir)
    folder = root / spec.folder

    if spec.archive is not None and missing_files(spec, root):
        _fetch_archive(spec, spec.archive, root, folder, progress)

    for remote in spec.files:
        path = folder / remote.name
        if path.is_file():
            problem = verify_file(path, remote)
            if problem is None:
                continue
            log.warning("%s is damaged (%s); downloading it again", path, problem)
        download_file(remote.url, path, sha256=remote.sha256, md5=remote.md5, progress=progress)

    still_missing = missing_files(spec, root)
    if still_missing:
        raise DownloadError(
            f"dataset '{name}' is still incomplete in {folder} after downloading"
            f" (missing: {', '.join(still_missing[:5])})"
        )
    return folder


def _fetch_archive(
    spec: DatasetSpec, archive: RemoteArchive, root: Path, folder: Path, progress: bool
) -> None:
    """Download ``archive`` and unpack it into ``folder``."""
    archive_path = root / ".downloads" / archive.name
    if archive_path.is_file() and verify_file(archive_path, archive) is None:
        log.info("using previously downloaded %s", archive_path)
    else:
        download_file(
            archive.url, archive_path, sha256=archive.sha256, md5=archive.md5, progress=progress
        )
    # Unpack next to the target first so an interrupted extraction never looks like a dataset.
    staging = folder.with_name(folder.name + ".extracting")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        extracted = extract_archive(
            archive_path, staging, root=archive.root, exclude=archive.exclude
        )
    except InputFileError as exc:
        archive_path.unlink(missing_ok=True)
        raise DownloadError(f"cannot unpack {archive.url} for '{spec.name}': {exc}") from exc
    try:
        for path in extracted:
            target = folder / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    except OSError as exc:
        raise DownloadError(f"cannot write {folder} ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive_path.unlink(missing_ok=True)
