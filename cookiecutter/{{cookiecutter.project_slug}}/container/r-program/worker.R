# Runtime: you should not need to edit this file.
#
# One R server process (`serve` starts them): plumbs serve.R and answers HTTP
# on the unix socket given as the first argument, for nginx.

#' The directory of this file (Rscript passes it as --file=).
program_dir <- function() {
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  dirname(normalizePath(file))
}

#' Plain-text answers for what plumber handles itself (errors, unknown paths).
plain_text <- function(res, status, message) {
  res$status <- status
  res$setHeader("Content-Type", "text/plain")
  res$body <- paste0(message, "\n")
  res
}

#' Start the server on `socket` and answer requests until the process is stopped.
run_worker <- function(socket) {
  for (part in c("contract.R", "payloads.R", "model.R")) source(file.path(program_dir(), part))
  # /invocations takes its body as raw bytes, whatever the Content-Type: payloads.R parses it.
  plumber::register_parser("raw_body", function(...) function(value, ...) value, regex = ".*",
                           verbose = FALSE)
  api <- plumber::pr(file.path(program_dir(), "serve.R"))
  api <- plumber::pr_set_docs(api, FALSE)
  api <- plumber::pr_set_debug(api, FALSE)
  api <- plumber::pr_set_404(api, function(req, res) {
    plain_text(res, 404, "not found: use /ping or /invocations")
  })
  api <- plumber::pr_set_error(api, function(req, res, err) {
    message("serve: ", conditionMessage(err))
    status <- if (identical(res$status, 405L) || identical(res$status, 405)) 405 else 500
    plain_text(res, status, if (status == 405) "405 Method Not Allowed" else
      paste("prediction failed:", gsub("\\s+", " ", conditionMessage(err))))
  })
  unlink(socket)
  server <- httpuv::startPipeServer(socket, 0L, api)
  on.exit(httpuv::stopServer(server))
  repeat httpuv::service(1000)
}

run_worker(commandArgs(trailingOnly = TRUE)[[1]])
