//! A warm pool of started kernels, so that a new thread's sandbox is ready
//! at once: taking one renames its (empty) workspace to the thread's and
//! starts a replacement in the background.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::{Kernel, KernelOptions, Result};

/// Kernels started ahead of need, each with a fresh workspace of its own.
#[derive(Debug, Clone)]
pub struct KernelPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    template: KernelOptions,
    /// Where the pool's own workspaces live until a kernel is taken.
    staging: PathBuf,
    size: usize,
    ready: Mutex<VecDeque<(Kernel, PathBuf)>>,
}

impl KernelPool {
    /// A pool keeping `size` kernels ready, made from `template` (its
    /// workspace is ignored) with workspaces staged under `staging`, which
    /// must be on the same file system as the threads' workspaces.
    pub fn new(template: KernelOptions, staging: PathBuf, size: usize) -> KernelPool {
        let inner = Inner { template, staging, size, ready: Mutex::new(VecDeque::new()) };
        KernelPool { inner: Arc::new(inner) }
    }

    /// Starts kernels until the pool is full.
    pub async fn fill(&self) -> Result<()> {
        while self.len() < self.inner.size {
            let started = self.start_one().await?;
            self.lock().push_back(started);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Kernel, PathBuf)>> {
        self.inner.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Kernels ready now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn start_one(&self) -> Result<(Kernel, PathBuf)> {
        let workspace = self.inner.staging.join(uuid::Uuid::now_v7().simple().to_string());
        let options = KernelOptions { workspace: workspace.clone(), ..self.inner.template.clone() };
        Ok((Kernel::start(&options).await?, workspace))
    }

    /// A kernel whose workspace is `workspace` (which must not exist yet):
    /// from the pool when one is ready, else started now. The pool refills
    /// in the background.
    pub async fn take(&self, workspace: &Path) -> Result<Kernel> {
        let ready = self.lock().pop_front();
        let pool = self.clone();
        tokio::spawn(async move {
            if let Err(error) = pool.fill().await {
                tracing::warn!(%error, "cannot refill the kernel pool");
            }
        });
        match ready {
            Some((mut kernel, staged)) => {
                if let Some(parent) = workspace.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                // The sandbox holds its workspace by a bind mount, which follows
                // the folder through a rename.
                std::fs::rename(&staged, workspace)?;
                kernel.moved_to(workspace.to_owned());
                Ok(kernel)
            }
            None => {
                Kernel::start(&KernelOptions { workspace: workspace.to_owned(), ..self.inner.template.clone() }).await
            }
        }
    }
}
