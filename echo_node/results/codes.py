"""Every coded concept Echo Node writes into its result objects, named by meaning.

Codes are pydicom `Code` values (immutable; highdicom accepts them wherever it takes a
`CodedConcept`). The comment on each says the template (TID) or context group (CID) of PS3.16 it
comes from. Each one is checked against pydicom's tables generated from PS3.16 in
tests/test_results_sr.py. SNOMED codes use the SCT scheme (the SRT codes of older editions of
TID 5200 are retired; pydicom maps them).

Measurement concepts are the TID 5200-era LOINC codes (CIDs 12200-12222) that echo carts emit and
cardiology reporting systems map, not the CID 12300 codes of TID 5300 (see DESIGN.md §5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydicom.sr.coding import Code

# --- Document title and structure (TID 5200 / 5202 / 5203) -------------------------------------

# TID 5200 row 1, document title (CID 12245 lists the paediatric/fetal variants).
ADULT_ECHO_REPORT = Code("125200", "DCM", "Adult Echocardiography Procedure Report")
TEMPLATE_ID_ECHO = "5200"  # ContentTemplateSequence TemplateIdentifier, mapping resource DCMR
# TID 5202 row 1, one container per anatomic section.
FINDINGS = Code("121070", "DCM", "Findings")
# TID 5202 row 2, HAS CONCEPT MOD of the section; value is $SectionSubject.
FINDING_SITE = Code("363698007", "SCT", "Finding Site")
# TID 5202 row 3, the measurement group container (one per image mode here).
MEASUREMENT_GROUP = Code("125007", "DCM", "Measurement Group")
# TID 5202/5203, HAS CONCEPT MOD; values from CID 12224 "Ultrasound Image Modes".
IMAGE_MODE = Code("399264008", "SCT", "Image Mode")
# TID 5203, HAS CONCEPT MOD; values from CID 12226 "Echocardiography Image View".
IMAGE_VIEW = Code("111031", "DCM", "Image View")
# TID 5203, HAS CONCEPT MOD; values from CID 12233 "Cardiac Phase".
CARDIAC_CYCLE_POINT = Code("272518008", "SCT", "Cardiac Cycle Point")
# TID 5203, HAS CONCEPT MOD; values from CID 12221 "Flow Direction".
FLOW_DIRECTION = Code("260674002", "SCT", "Direction of Flow")
# TID 300/320, INFERRED FROM the SCOORD / IMAGE a value was measured on.
SOURCE_OF_MEASUREMENT = Code("121112", "DCM", "Source of Measurement")
# TID 5200 free-text notes (pipelines that did not run); concept from CID 3 / DCM.
COMMENT = Code("121106", "DCM", "Comment")

# --- Section subjects ($SectionSubject of TID 5200 rows 9-15) ---------------------------------

LEFT_VENTRICLE = Code("87878005", "SCT", "Left Ventricle")
RIGHT_VENTRICLE = Code("53085002", "SCT", "Right Ventricle")
LEFT_ATRIUM = Code("82471001", "SCT", "Left Atrium")
AORTIC_VALVE = Code("34202007", "SCT", "Aortic Valve")
MITRAL_VALVE = Code("91134007", "SCT", "Mitral Valve")
TRICUSPID_VALVE = Code("46030003", "SCT", "Tricuspid Valve")
AORTA = Code("15825003", "SCT", "Aorta")

# --- Image modes (CID 12224) --------------------------------------------------------------------

MODE_2D = Code("399064001", "SCT", "2D mode")
MODE_M = Code("399155008", "SCT", "M mode")
MODE_DOPPLER_PULSED = Code("261199008", "SCT", "Doppler Pulsed")
MODE_DOPPLER_CW = Code("261198000", "SCT", "Doppler Continuous Wave")

# --- Image views (CID 12226) --------------------------------------------------------------------

VIEW_PLAX = Code("399139001", "SCT", "Parasternal long axis")
VIEW_A4C = Code("399214001", "SCT", "Apical four chamber")

# --- Cardiac phases (CID 12233) -----------------------------------------------------------------

END_DIASTOLE = Code("416190007", "SCT", "End Diastole")
END_SYSTOLE = Code("416430001", "SCT", "End Systole")

# --- Flow directions (CID 12221) ----------------------------------------------------------------

REGURGITANT_FLOW = Code("397417004", "SCT", "Regurgitant Flow")

# --- Measurement concepts (LOINC) ---------------------------------------------------------------

# CID 12201 "Left Ventricle Linear".
IVSD = Code("18154-5", "LN", "Interventricular Septum Diastolic Thickness")
LVIDD = Code("29436-3", "LN", "Left Ventricle Internal End Diastolic Dimension")
LVIDS = Code("29438-9", "LN", "Left Ventricle Internal Systolic Dimension")
LVPWD = Code("18152-9", "LN", "Left Ventricle Posterior Wall Diastolic Thickness")
# CID 12204 "Echocardiography Right Ventricle Measurement" has no basal dimension (only RVIDd
# 20304-2, the PLAX/M-mode internal dimension); the A4C basal diameter is a CID 12300 concept,
# used in the Right Ventricle section (the section's context group is extensible).
RV_BASAL_DIMENSION = Code("80080-5", "LN", "Right ventricular basal dimension 4C")
# CID 12205 "Echocardiography Left Atrium Measurement".
LA_AP_SYSTOLIC = Code("29469-4", "LN", "Left Atrium Antero-posterior Systolic Dimension")
# CID 12212 "Echocardiography Aorta Measurement".
AORTIC_ROOT_DIAMETER = Code("18015-8", "LN", "Aortic Root Diameter")
ASCENDING_AORTA_DIAMETER = Code("18012-5", "LN", "Ascending Aortic Diameter")
# CID 12202 "Left Ventricle Volume" (ejection fraction lives there).
LVEF = Code("18043-0", "LN", "Left Ventricular Ejection Fraction by US")
# CID 12207 "Mitral Valve Measurements".
MV_E_PEAK = Code("18037-2", "LN", "Mitral Valve E-Wave Peak Velocity")
MV_A_PEAK = Code("17978-8", "LN", "Mitral Valve A-Wave Peak Velocity")
MV_E_A_RATIO = Code("18038-0", "LN", "Mitral Valve E to A Ratio")
# CID 12222 "Orifice Flow Properties" (used in the AV/TV sections of CID 12208/12211).
PEAK_BLOOD_VELOCITY = Code("20355-4", "LN", "Peak Blood Velocity")

# --- Algorithm identification (TID 4019), device observer (TID 1004) ------------------------------

ALGORITHM_NAME = Code("111001", "DCM", "Algorithm Name")
ALGORITHM_VERSION = Code("111003", "DCM", "Algorithm Version")
OBSERVER_TYPE_DEVICE = Code("121007", "DCM", "Device")
# PS3.3 C.12.1.1.7 Purpose of Reference for Contributing Equipment (CID 7005).
PROCESSING_EQUIPMENT = Code("109102", "DCM", "Processing Equipment")

# --- UCUM units (CID 7181 "Abstract Multi-dimensional Image Model Component Units") -------------

UNIT_CM = Code("cm", "UCUM", "cm")
UNIT_PERCENT = Code("%", "UCUM", "Percent")
UNIT_CM_PER_S = Code("cm/s", "UCUM", "centimeter/second")
UNIT_RATIO = Code("{ratio}", "UCUM", "ratio")


@dataclass(frozen=True)
class MeasurementCoding:
    """How one `ai.findings.Finding` name is written in a TID 5200 report."""

    section: Code  # $SectionSubject of the TID 5202 section (the Finding Site)
    concept: Code  # the NUM's concept name
    unit: Code  # the UCUM unit the value is written in
    cardiac_phase: Code | None = None  # Cardiac Cycle Point, where the concept implies one
    flow_direction: Code | None = None  # Direction of Flow, where the concept needs one
    # Image mode when the clip does not say (a spectral clip without PW/CW): the one the
    # measurement is made with in practice (TR Vmax by CW, mitral inflow by PW).
    default_mode: Code | None = None


# Finding.name (ai/findings.py) -> coding. The phase is the one the LOINC concept is defined at;
# the peak velocities carry none (the wave names them). TR Vmax is the generic Peak Blood
# Velocity post-coordinated with Regurgitant Flow inside the Tricuspid Valve section, as carts do.
FINDING_CODING: Mapping[str, MeasurementCoding] = MappingProxyType(
    {
        "IVSd": MeasurementCoding(LEFT_VENTRICLE, IVSD, UNIT_CM, END_DIASTOLE),
        "LVIDd": MeasurementCoding(LEFT_VENTRICLE, LVIDD, UNIT_CM, END_DIASTOLE),
        "LVPWd": MeasurementCoding(LEFT_VENTRICLE, LVPWD, UNIT_CM, END_DIASTOLE),
        "LVIDs": MeasurementCoding(LEFT_VENTRICLE, LVIDS, UNIT_CM, END_SYSTOLE),
        "LVEF": MeasurementCoding(LEFT_VENTRICLE, LVEF, UNIT_PERCENT),
        "RVbase": MeasurementCoding(RIGHT_VENTRICLE, RV_BASAL_DIMENSION, UNIT_CM, END_DIASTOLE),
        "LAd": MeasurementCoding(LEFT_ATRIUM, LA_AP_SYSTOLIC, UNIT_CM, END_SYSTOLE),
        "AoRoot": MeasurementCoding(AORTA, AORTIC_ROOT_DIAMETER, UNIT_CM, END_DIASTOLE),
        "AoAsc": MeasurementCoding(AORTA, ASCENDING_AORTA_DIAMETER, UNIT_CM, END_DIASTOLE),
        "MV_E": MeasurementCoding(
            MITRAL_VALVE, MV_E_PEAK, UNIT_CM_PER_S, default_mode=MODE_DOPPLER_PULSED
        ),
        "MV_A": MeasurementCoding(
            MITRAL_VALVE, MV_A_PEAK, UNIT_CM_PER_S, default_mode=MODE_DOPPLER_PULSED
        ),
        "MV_E_A": MeasurementCoding(
            MITRAL_VALVE, MV_E_A_RATIO, UNIT_RATIO, default_mode=MODE_DOPPLER_PULSED
        ),
        "TR_Vmax": MeasurementCoding(
            TRICUSPID_VALVE,
            PEAK_BLOOD_VELOCITY,
            UNIT_CM_PER_S,
            flow_direction=REGURGITANT_FLOW,
            default_mode=MODE_DOPPLER_CW,
        ),
        "AV_Vmax": MeasurementCoding(
            AORTIC_VALVE, PEAK_BLOOD_VELOCITY, UNIT_CM_PER_S, default_mode=MODE_DOPPLER_CW
        ),
    }
)

# Report section order (TID 5200 rows 9-15 order for the sections used here).
SECTION_ORDER: tuple[Code, ...] = (
    LEFT_VENTRICLE,
    RIGHT_VENTRICLE,
    LEFT_ATRIUM,
    AORTIC_VALVE,
    MITRAL_VALVE,
    TRICUSPID_VALVE,
    AORTA,
)
