//! The round-trip matrix between regions (`data/aws-10-regions-p50-rtt.json`, see the
//! README beside it for its source).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct LatencyMatrix {
    pub regions: Vec<String>,
    /// Round trip from region i to region j, milliseconds.
    pub rtt_ms: Vec<Vec<f64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum LatencyError {
    #[error("not a latency matrix: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the matrix must be square with one row per region and non-negative entries")]
    Shape,
}

impl LatencyMatrix {
    /// Ten AWS regions on five continents, median round trips.
    pub fn aws_ten_regions() -> LatencyMatrix {
        Self::from_json(include_str!("../data/aws-10-regions-p50-rtt.json")).expect("the bundled matrix is valid")
    }

    pub fn from_json(text: &str) -> Result<LatencyMatrix, LatencyError> {
        let matrix: LatencyMatrix = serde_json::from_str(text)?;
        let n = matrix.regions.len();
        let square = n > 0 && matrix.rtt_ms.len() == n && matrix.rtt_ms.iter().all(|row| row.len() == n);
        if !square || matrix.rtt_ms.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(LatencyError::Shape);
        }
        Ok(matrix)
    }

    pub fn len(&self) -> usize {
        self.regions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// One-way delay, half the round trip.
    pub fn one_way_ms(&self, from: usize, to: usize) -> f64 {
        self.rtt_ms[from][to] / 2.0
    }

    pub fn rtt(&self, from: usize, to: usize) -> f64 {
        self.rtt_ms[from][to]
    }
}
