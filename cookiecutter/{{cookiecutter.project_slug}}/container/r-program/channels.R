# Runtime: you should not need to edit this file.
#
# A training channel's inputs, in any of SageMaker's input modes
# (TrainingInputMode in inputdataconfig.json):
#   File      the channel's objects are files under /opt/ml/input/data/<channel>/
#   FastFile  the same view, streamed from S3 as it is read
#   Pipe      one named pipe per epoch, /opt/ml/input/data/<channel>_<epoch>,
#             polled for until it appears, then read to its end; with
#             RecordWrapperType "RecordIO" each S3 object is one record.
# channel_inputs() hides the difference: it returns each input's bytes.

#' RecordIO: each record starts with this magic number (little-endian), then its length word.
recordio_magic <- as.raw(c(0x0a, 0x23, 0xd7, 0xce))

#' The channels inputdataconfig.json configures.
#' @return a named list: each channel's entry (TrainingInputMode, RecordWrapperType, ...)
channel_configs <- function() read_config("inputdataconfig.json", NULL)

#' Each input of a channel, whatever its input mode.
#' @param name the channel, e.g. "training"
#' @param epoch the pass over the data (Pipe mode opens <channel>_<epoch>)
#' @return a named list of raw vectors, one per file, pipe or RecordIO record,
#'   named after where it came from
channel_inputs <- function(name, epoch = 0L) {
  config <- channel_configs()[[name]]
  if (is.null(config)) {
    stop(sprintf("channel '%s' is required but not configured (channels: %s)", name,
                 paste(sort(names(channel_configs())), collapse = ", ")), call. = FALSE)
  }
  mode <- config$TrainingInputMode %||% "File"
  if (!mode %in% c("File", "FastFile", "Pipe")) {
    stop(sprintf("channel '%s': input mode '%s' is not supported; use File, FastFile or Pipe",
                 name, mode), call. = FALSE)
  }
  if (mode == "Pipe") {
    path <- opt_ml_path("input", "data", paste0(name, "_", epoch))
    bytes <- read_pipe(path)
    if (identical(config$RecordWrapperType, "RecordIO")) {
      records <- read_recordio(bytes, path)
      return(stats::setNames(records, sprintf("%s record %d", path, seq_along(records))))
    }
    return(stats::setNames(list(bytes), path))
  }
  files <- channel_files(name)
  stats::setNames(lapply(files, function(f) readBin(f, "raw", n = file.size(f))), files)
}

#' File and FastFile mode: every regular file of a channel, sorted, hidden ones skipped.
#' @param directory where its files are (a processing job's input: its LocalPath)
channel_files <- function(name, directory = opt_ml_path("input", "data", name)) {
  if (!dir.exists(directory)) {
    stop(sprintf("channel '%s' has no data: %s does not exist", name, directory), call. = FALSE)
  }
  relative <- sort(list.files(directory, recursive = TRUE, all.files = TRUE, no.. = TRUE))
  hidden <- vapply(strsplit(relative, "/", fixed = TRUE), function(parts) any(startsWith(parts, ".")),
                   logical(1))
  files <- file.path(directory, relative[!hidden])
  files <- files[!dir.exists(files)]
  if (length(files) == 0) stop(sprintf("channel '%s' is empty: no files in %s", name, directory),
                               call. = FALSE)
  files
}

#' Wait for a Pipe-mode FIFO and read it to its end.
#'
#' SageMaker may create it a little after the job starts; a stop request
#' (SIGTERM) ends the wait.
read_pipe <- function(path) {
  while (!file.exists(path)) {
    if (stop_requested()) stop_training(sprintf("while waiting for %s", path))
    Sys.sleep(0.1)
  }
  con <- file(path, open = "rb")
  on.exit(close(con))
  chunks <- list()
  repeat {
    chunk <- readBin(con, "raw", n = 4194304L)
    if (length(chunk) == 0) break
    chunks[[length(chunks) + 1L]] <- chunk
  }
  if (length(chunks) == 0) raw(0) else unlist(chunks, use.names = FALSE)
}

#' The records of a RecordIO stream; multi-part records are joined.
#' @param bytes the stream, a raw vector
#' @param name where it came from, for messages
#' @return a list of raw vectors
read_recordio <- function(bytes, name) {
  records <- list()
  parts <- list()
  at <- 1L
  total <- length(bytes)
  while (at <= total) {
    if (at + 7L > total) stop(sprintf("%s: the RecordIO stream ends in the middle of a record", name),
                              call. = FALSE)
    if (!identical(bytes[at:(at + 3L)], recordio_magic)) {
      stop(sprintf("%s: not RecordIO: a record header does not start with the magic number", name),
           call. = FALSE)
    }
    word <- sum(as.numeric(bytes[(at + 4L):(at + 7L)]) * 256^(0:3))
    size <- word %% 2^29
    flag <- word %/% 2^29
    end <- at + 7L + size
    if (end > total) stop(sprintf("%s: the RecordIO stream ends in the middle of a record", name),
                          call. = FALSE)
    parts[[length(parts) + 1L]] <- if (size > 0) bytes[(at + 8L):end] else raw(0)
    at <- end + 1L + (4L - size %% 4L) %% 4L
    if (flag %in% c(0, 3)) {  # a whole record, or the last part of one
      records[[length(records) + 1L]] <- unlist(parts, use.names = FALSE) %||% raw(0)
      parts <- list()
    }
  }
  if (length(parts) > 0) stop(sprintf("%s: the RecordIO stream ends in the middle of a record", name),
                              call. = FALSE)
  records
}
