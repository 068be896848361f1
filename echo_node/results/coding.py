"""How each value of the report (a key of catalogue.MEASURED, catalogue.DERIVED or a patient
characteristic) is coded in TID 5200 and in TID 5300. The SR writers read it; units come from
the catalogue's UCUM strings (UNITS), so a value's unit is decided in one place.

TID 5200: the TID 5200-era LOINC concepts that echo carts emit and cardiology reporting systems
map, in their anatomic section, with the modifiers of TID 5203 where the concept needs them.

TID 5300: the CID 12300 "Core Echo Measurement" concept, written in TID 5301 (Pre-coordinated
Measurements) when nothing more must be said about the value; TID 5301 takes no other child, so
a value that carries a qualification, a calculated value (its formula) and a value with no CID
12300 concept (the AI ejection fraction, relative wall thickness) go to TID 5302
(Post-coordinated Measurements) with the modifiers in `Coordinates`, which give them their
meaning from standard concepts (PS3.16 TID 5302 and its CIDs 12302-12307).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydicom.sr.coding import Code

from echo_node.results import codes as c

UNITS: Mapping[str, Code] = MappingProxyType(
    {
        "cm": c.UNIT_CM,
        "%": c.UNIT_PERCENT,
        "cm/s": c.UNIT_CM_PER_S,
        "{ratio}": c.UNIT_RATIO,
        "mm[Hg]": c.UNIT_MMHG,
        "g": c.UNIT_G,
        "kg": c.UNIT_KG,
        "m2": c.UNIT_M2,
        "/min": c.UNIT_PER_MIN,
    }
)


@dataclass(frozen=True)
class Coding5200:
    """A value in a TID 5200 report: its section and concept, and the TID 5203 modifiers."""

    section: Code  # $SectionSubject of the TID 5202 section (its Finding Site)
    concept: Code
    cardiac_phase: Code | None = None  # where the concept is defined at one phase
    flow_direction: Code | None = None  # where the concept needs one (a regurgitant jet)
    # Finding Site on the NUM where the section alone does not say where it was measured (LVOT
    # inside the Left Ventricle section, the side of the mitral annulus).
    finding_site: Code | None = None
    method: Code | None = None  # TID 5203 $Method (CID 12227 / 12232)
    spectral_mode: Code | None = None  # image mode of a spectral clip that does not say PW/CW
    equivalent_meaning: str | None = None  # the plain name of a post-coordinated concept


_PW, _CW = c.MODE_DOPPLER_PULSED, c.MODE_DOPPLER_CW
LV, ED, ES = c.LEFT_VENTRICLE, c.END_DIASTOLE, c.END_SYSTOLE

CODING_5200: Mapping[str, Coding5200] = MappingProxyType(
    {
        "IVSd": Coding5200(LV, c.IVSD, ED),
        "LVIDd": Coding5200(LV, c.LVIDD, ED),
        "LVPWd": Coding5200(LV, c.LVPWD, ED),
        "LVIDs": Coding5200(LV, c.LVIDS, ES),
        "LVEF": Coding5200(LV, c.LVEF),
        "LVOT_Vmax": Coding5200(
            LV, c.PEAK_BLOOD_VELOCITY, finding_site=c.LVOT_SITE, spectral_mode=_PW
        ),
        "e_lat": Coding5200(
            LV, c.E_PRIME_PEAK, finding_site=c.LATERAL_MITRAL_ANNULUS, spectral_mode=_PW
        ),
        "e_med": Coding5200(
            LV, c.E_PRIME_PEAK, finding_site=c.MEDIAL_MITRAL_ANNULUS, spectral_mode=_PW
        ),
        "LV_mass": Coding5200(LV, c.LV_MASS, ED, method=c.LV_MASS_LINEAR),
        "RWT": Coding5200(LV, c.RATIO, ED, equivalent_meaning="Relative Wall Thickness"),
        "FS": Coding5200(LV, c.LV_FRACTIONAL_SHORTENING),
        "RVbase": Coding5200(c.RIGHT_VENTRICLE, c.RV_BASAL_DIMENSION, ED),
        "LAd": Coding5200(c.LEFT_ATRIUM, c.LA_AP_SYSTOLIC, ES),
        "AV_Vmax": Coding5200(c.AORTIC_VALVE, c.PEAK_BLOOD_VELOCITY, spectral_mode=_CW),
        "AV_PG": Coding5200(
            c.AORTIC_VALVE, c.PEAK_GRADIENT, method=c.SIMPLIFIED_BERNOULLI, spectral_mode=_CW
        ),
        "MV_E": Coding5200(c.MITRAL_VALVE, c.MV_E_PEAK, spectral_mode=_PW),
        "MV_A": Coding5200(c.MITRAL_VALVE, c.MV_A_PEAK, spectral_mode=_PW),
        "MV_E_A": Coding5200(c.MITRAL_VALVE, c.MV_E_A_RATIO, spectral_mode=_PW),
        "MR_Vmax": Coding5200(
            c.MITRAL_VALVE,
            c.PEAK_BLOOD_VELOCITY,
            flow_direction=c.REGURGITANT_FLOW,
            spectral_mode=_CW,
        ),
        # TR Vmax is the generic Peak Blood Velocity post-coordinated with Regurgitant Flow in
        # the Tricuspid Valve section, as carts write it.
        "TR_Vmax": Coding5200(
            c.TRICUSPID_VALVE,
            c.PEAK_BLOOD_VELOCITY,
            flow_direction=c.REGURGITANT_FLOW,
            spectral_mode=_CW,
        ),
        "TR_PG": Coding5200(
            c.TRICUSPID_VALVE,
            c.PEAK_GRADIENT,
            flow_direction=c.REGURGITANT_FLOW,
            method=c.SIMPLIFIED_BERNOULLI,
            spectral_mode=_CW,
        ),
        "AoRoot": Coding5200(c.AORTA, c.AORTIC_ROOT_DIAMETER, ED),
        "AoAsc": Coding5200(c.AORTA, c.ASCENDING_AORTA_DIAMETER, ED),
    }
)

# Report section order (TID 5200 rows 9-15 order for the sections used here).
SECTION_ORDER: tuple[Code, ...] = (
    c.LEFT_VENTRICLE,
    c.RIGHT_VENTRICLE,
    c.LEFT_ATRIUM,
    c.AORTIC_VALVE,
    c.MITRAL_VALVE,
    c.TRICUSPID_VALVE,
    c.AORTA,
)

# TID 5201 rows, by characteristic key (report.Characteristic.key).
CHARACTERISTICS: Mapping[str, Code] = MappingProxyType(
    {
        "height": c.PATIENT_HEIGHT,
        "weight": c.PATIENT_WEIGHT,
        "bsa": c.BODY_SURFACE_AREA,
        "heart_rate": c.HEART_RATE,
    }
)


@dataclass(frozen=True)
class Coordinates:
    """The TID 5302 modifiers that give a value its meaning, in the template's row order."""

    measurement_type: Code  # CID 12303
    finding_site: Code  # CID 12305
    observation_type: Code  # CID 12302
    measured_property: Code  # CID 12304
    phase: Code | None = None  # CID 12307
    flow_direction: Code | None = None  # CID 12306
    method: Code | None = None  # CID 12227
    view: Code | None = None  # CID 12226, where the view is significant


@dataclass(frozen=True)
class Coding5300:
    concept: Code  # the CID 12300 concept (2D where the mode matters), or a standard one
    label: str  # Short Label; " (2D)"/" (MM)" is added where the concept is mode-specific
    coordinates: Coordinates
    mmode: Code | None = None  # the M-mode concept, where CID 12300 has one
    pre_coordinated: bool = True  # a CID 12300 concept: TID 5301 unless more must be said
    equivalent_meaning: str | None = None


def _structure(site: Code, prop: Code, phase: Code | None = None) -> Coordinates:
    return Coordinates(c.DIRECTLY_MEASURED, site, c.STRUCTURE_OF_FINDING_SITE, prop, phase)


def _flow(site: Code, direction: Code, phase: Code | None = None) -> Coordinates:
    return Coordinates(
        c.DIRECTLY_MEASURED, site, c.HEMODYNAMIC, c.PEAK_BLOOD_VELOCITY, phase, direction
    )


def _tissue(site: Code) -> Coordinates:
    return Coordinates(
        c.DIRECTLY_MEASURED, site, c.BEHAVIOR_OF_FINDING_SITE, c.PEAK_TISSUE_VELOCITY, c.E_WAVE
    )


def _gradient(site: Code, direction: Code) -> Coordinates:
    return Coordinates(
        c.CALCULATED,
        site,
        c.HEMODYNAMIC,
        c.PEAK_GRADIENT_PROPERTY,
        flow_direction=direction,
        method=c.SIMPLIFIED_BERNOULLI,
    )


IVS, LVBIL = c.INTERVENTRICULAR_SEPTUM, c.LV_BASAL_INFEROLATERAL
THICK, LVID, DIAM = c.THICKNESS, c.INTERNAL_DIMENSION, c.DIAMETER
ANTE, RETRO, MV = c.ANTEGRADE, c.RETROGRADE, c.MITRAL_VALVE

CODING_5300: Mapping[str, Coding5300] = MappingProxyType(
    {
        "IVSd": Coding5300(c.IVSD_2D, "IVSd", _structure(IVS, THICK, ED), mmode=c.IVSD_MM),
        "LVIDd": Coding5300(c.LVIDD_2D, "LVIDd", _structure(LV, LVID, ED), mmode=c.LVIDD_MM),
        "LVIDs": Coding5300(c.LVIDS_2D, "LVIDs", _structure(LV, LVID, ES), mmode=c.LVIDS_MM),
        "LVPWd": Coding5300(c.LVPWD_2D, "LVPWd", _structure(LVBIL, THICK, ED), mmode=c.LVPWD_MM),
        "AoRoot": Coding5300(
            c.AORTIC_ROOT_DIAMETER_5300, "Ao Root", _structure(c.AORTIC_ROOT, DIAM, ED)
        ),
        "AoAsc": Coding5300(
            c.ASCENDING_AORTA_DIMENSION, "Ao Asc", _structure(c.ASCENDING_AORTA, DIAM, ED)
        ),
        "LAd": Coding5300(
            c.LA_DIAMETER_2D,
            "LA Dimen",
            _structure(c.LEFT_ATRIUM, DIAM, ES),
            mmode=c.LA_DIAMETER_MM,
        ),
        "RVbase": Coding5300(
            c.RV_BASAL_DIMENSION, "RVD1 (4C)", _structure(c.RV_BASAL_SEGMENT, DIAM, ED)
        ),
        "TR_Vmax": Coding5300(c.TR_VMAX, "TR Vmax", _flow(c.TRICUSPID_VALVE, RETRO)),
        "AV_Vmax": Coding5300(c.AV_VMAX, "AV Vmax", _flow(c.AORTIC_VALVE, ANTE)),
        "MR_Vmax": Coding5300(c.MR_VMAX, "MR Vmax", _flow(MV, RETRO)),
        "LVOT_Vmax": Coding5300(c.LVOT_VMAX, "LVOT Vmax", _flow(c.LVOT_SITE, ANTE)),
        "MV_E": Coding5300(c.MV_E_VMAX, "MV E Vmax", _flow(MV, ANTE, c.E_WAVE)),
        "MV_A": Coding5300(c.MV_A_VMAX, "MV A Vmax", _flow(MV, ANTE, c.A_WAVE)),
        "e_lat": Coding5300(c.MV_LATERAL_E_PRIME, "e' lat", _tissue(c.LATERAL_MITRAL_ANNULUS)),
        "e_med": Coding5300(c.MV_SEPTAL_E_PRIME, "e' sept", _tissue(c.MEDIAL_MITRAL_ANNULUS)),
        "MV_E_A": Coding5300(
            c.MV_E_A_RATIO,
            "MV E/A",
            Coordinates(c.RATIO, MV, c.HEMODYNAMIC, c.PEAK_BLOOD_VELOCITY, flow_direction=ANTE),
        ),
        "TR_PG": Coding5300(c.TR_PEAK_GRADIENT, "TR PG", _gradient(c.TRICUSPID_VALVE, RETRO)),
        "AV_PG": Coding5300(c.AV_PEAK_GRADIENT, "AV PG", _gradient(c.AORTIC_VALVE, ANTE)),
        "LV_mass": Coding5300(
            c.LV_MASS_2D,
            "LV Mass",
            Coordinates(
                c.CALCULATED,
                LV,
                c.STRUCTURE_OF_FINDING_SITE,
                c.MASS,
                ED,
                method=c.LV_MASS_LINEAR,
            ),
        ),
        "FS": Coding5300(
            c.LV_FS_2D,
            "FS (2D)",
            Coordinates(c.CALCULATED, LV, c.BEHAVIOR_OF_FINDING_SITE, c.FRACTIONAL_SHORTENING),
        ),
        # No CID 12300 concept: written post-coordinated.
        "RWT": Coding5300(
            c.RATIO,
            "RWT",
            Coordinates(c.RATIO, LV, c.STRUCTURE_OF_FINDING_SITE, THICK, ED),
            pre_coordinated=False,
            equivalent_meaning="Relative Wall Thickness",
        ),
        # EchoNet-Dynamic regresses EF from one apical 4-chamber clip: not Method of Disks, so
        # not 79993-2 "single plane 4C (MOD)"; the generic LOINC EF by US, post-coordinated as
        # an estimate (CID 3627 "Estimated": neither measured with calipers nor calculated from
        # volumes) from the A4C view. No method row: CID 12227 has none for a neural network,
        # and naming none is truer than naming a wrong one.
        "LVEF": Coding5300(
            c.LVEF,
            "LVEF (A4C, AI)",
            Coordinates(
                c.ESTIMATED,
                LV,
                c.BEHAVIOR_OF_FINDING_SITE,
                c.CARDIAC_EJECTION_FRACTION,
                view=c.VIEW_A4C,
            ),
            pre_coordinated=False,
        ),
    }
)
