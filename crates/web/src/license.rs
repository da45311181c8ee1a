//! Licence, SBOM, notice, proof and disclosure endpoints (issue 18). Each handler builds the operation from the
//! body, runs it through the core on a blocking thread and returns the core's document. Scans are jobs: progress
//! arrives as `license-job` events on `/api/v1/events`, `POST /api/v1/license/jobs/{job}/cancel` stops one.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use cacheos_core::executor::Done;
use cacheos_core::license::{
    Disclosure, DisclosureArgs, JobRef, LicenseScanArgs, Notice, ProofVerifyArgs, SbomArgs, SbomDocuments, ScanReport,
    SourceArgs, Verification,
};
use cacheos_core::{Caller, Operation, Output};

use crate::api::{run, unexpected};
use crate::drives::Body;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// Per file the SPDX licences below a drive's or running sandbox's path and where each came from, a summary and
/// compatibility notes (information, not legal advice).
#[utoipa::path(post, path = "/api/v1/license/scan", operation_id = "license.scan", tag = "licences",
    request_body = LicenseScanArgs,
    responses((status = 200, body = ScanReport), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn scan(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<LicenseScanArgs>,
) -> Result<Json<ScanReport>, ApiError> {
    match run(&state, caller, Operation::LicenseScan(args)).await? {
        Output::LicenseScan(r) => Ok(Json(*r)),
        _ => Err(unexpected("license.scan")),
    }
}

/// Stops a running scan, SBOM or proof job.
#[utoipa::path(post, path = "/api/v1/license/jobs/{job}/cancel", operation_id = "license.cancel", tag = "licences",
    params(("job" = String, Path, description = "job name from the license-job events")),
    responses((status = 200, body = Done), (status = 404, body = ErrorBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(job): Path<String>,
) -> Result<Json<Done>, ApiError> {
    match run(&state, caller, Operation::LicenseCancel(JobRef { job })).await? {
        Output::Done(d) => Ok(Json(d)),
        _ => Err(unexpected("license.cancel")),
    }
}

/// An SPDX 2.3 and a CycloneDX 1.5 SBOM (JSON) of a sandbox, a drive path or the appliance, with licences.
#[utoipa::path(post, path = "/api/v1/sbom", operation_id = "sbom.create", tag = "licences",
    request_body = SbomArgs,
    responses((status = 200, body = SbomDocuments), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn sbom(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<SbomArgs>,
) -> Result<Json<SbomDocuments>, ApiError> {
    match run(&state, caller, Operation::SbomCreate(args)).await? {
        Output::Sbom(d) => Ok(Json(*d)),
        _ => Err(unexpected("sbom.create")),
    }
}

/// A third-party notice: components and the licence texts, grouped by licence.
#[utoipa::path(post, path = "/api/v1/notice", operation_id = "notice.create", tag = "licences",
    request_body = SbomArgs,
    responses((status = 200, body = Notice), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn notice(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<SbomArgs>,
) -> Result<Json<Notice>, ApiError> {
    match run(&state, caller, Operation::NoticeCreate(args)).await? {
        Output::Notice(n) => Ok(Json(n)),
        _ => Err(unexpected("notice.create")),
    }
}

/// A signed proof of existence of the files below a drive's or sandbox's path (kept by the appliance).
#[utoipa::path(post, path = "/api/v1/proofs", operation_id = "proof.create", tag = "licences",
    request_body = SourceArgs,
    responses((status = 200, body = cacheos_core::license::Manifest), (status = 400, body = ErrorBody)))]
pub(crate) async fn proof_create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<SourceArgs>,
) -> Result<Json<cacheos_core::license::Manifest>, ApiError> {
    match run(&state, caller, Operation::ProofCreate(args)).await? {
        Output::Proof(m) => Ok(Json(*m)),
        _ => Err(unexpected("proof.create")),
    }
}

/// Checks a proof (a manifest, a kept proof's root, or the newest): changed files, root, signature, key, time stamp.
#[utoipa::path(post, path = "/api/v1/proofs/verify", operation_id = "proof.verify", tag = "licences",
    request_body = ProofVerifyArgs,
    responses((status = 200, body = Verification), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn proof_verify(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<ProofVerifyArgs>,
) -> Result<Json<Verification>, ApiError> {
    match run(&state, caller, Operation::ProofVerify(args)).await? {
        Output::ProofVerified(v) => Ok(Json(v)),
        _ => Err(unexpected("proof.verify")),
    }
}

/// An invention-disclosure draft (Markdown) citing the newest proof, with the filing steps; nothing is filed.
#[utoipa::path(post, path = "/api/v1/disclosures", operation_id = "disclosure.draft", tag = "licences",
    request_body = DisclosureArgs,
    responses((status = 200, body = Disclosure), (status = 400, body = ErrorBody)))]
pub(crate) async fn disclosure(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Body(args): Body<DisclosureArgs>,
) -> Result<Json<Disclosure>, ApiError> {
    match run(&state, caller, Operation::DisclosureDraft(args)).await? {
        Output::Disclosure(d) => Ok(Json(d)),
        _ => Err(unexpected("disclosure.draft")),
    }
}
