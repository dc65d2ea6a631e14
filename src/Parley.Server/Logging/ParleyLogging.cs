using Microsoft.Extensions.Logging;
using Serilog;
using Serilog.Events;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;

namespace Parley.Server.Logging;

/// <summary>Where and how the hub logs. Defaults follow docs/operations.md §Logs.</summary>
public sealed class LogOptions
{
    /// <summary>The log file; null disables file logging. Default: <c>&lt;data dir&gt;/logs/parley.log</c>.</summary>
    public string? FilePath { get; set; }

    /// <summary>Rotate the file when it reaches this size, in bytes. Default 10 MB.</summary>
    public long FileSizeLimitBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>Rotated files kept besides the current one. Default 5.</summary>
    public int RetainedFiles { get; set; } = 5;

    /// <summary>Rotated files older than this are deleted. Default 14 days.</summary>
    public TimeSpan RetainedAge { get; set; } = TimeSpan.FromDays(14);

    /// <summary>Minimum level. Default Information.</summary>
    public LogLevel MinimumLevel { get; set; } = LogLevel.Information;

    /// <summary>Also log to standard error. Default true.</summary>
    public bool Console { get; set; } = true;
}

/// <summary>Builds the Serilog pipeline: human-readable console lines and JSON lines in a rotating file, both redacted.</summary>
public static class ParleyLogging
{
    /// <summary>A logger factory writing where <paramref name="options"/> says (for code outside the web host).</summary>
    public static ILoggerFactory CreateFactory(LogOptions options)
    {
        return LoggerFactory.Create(builder => AddParleyLogging(builder, options));
    }

    /// <summary>Adds the Serilog pipeline for <paramref name="options"/> to a logging builder (without scopes: see <see cref="ScopelessLoggerProvider"/>).</summary>
    public static ILoggingBuilder AddParleyLogging(this ILoggingBuilder builder, LogOptions options)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);
        builder.AddProvider(new ScopelessLoggerProvider(new Serilog.Extensions.Logging.SerilogLoggerProvider(CreateSerilog(options), dispose: true)));
        return builder.SetMinimumLevel(options.MinimumLevel);
    }

    /// <summary>The Serilog logger behind <see cref="CreateFactory"/>.</summary>
    public static Serilog.Core.Logger CreateSerilog(LogOptions options)
    {
        var level = options.MinimumLevel switch
        {
            LogLevel.Trace => LogEventLevel.Verbose,
            LogLevel.Debug => LogEventLevel.Debug,
            LogLevel.Warning => LogEventLevel.Warning,
            LogLevel.Error => LogEventLevel.Error,
            LogLevel.Critical or LogLevel.None => LogEventLevel.Fatal,
            _ => LogEventLevel.Information,
        };
        var configuration = new LoggerConfiguration()
            .MinimumLevel.Is(level)
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Warning)
            .Enrich.FromLogContext();
        if (options.Console)
        {
            configuration = configuration.WriteTo.Console(
                new RedactingFormatter(new MessageTemplateTextFormatter("{Timestamp:HH:mm:ss} {Level:u3} {Message:lj}{NewLine}{Exception}")),
                standardErrorFromLevel: LogEventLevel.Verbose);
        }
        if (options.FilePath is { } path)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            configuration = configuration.WriteTo.File(
                new RedactingFormatter(new CompactJsonFormatter()),
                path,
                fileSizeLimitBytes: options.FileSizeLimitBytes,
                rollOnFileSizeLimit: true,
                retainedFileCountLimit: options.RetainedFiles + 1,
                retainedFileTimeLimit: options.RetainedAge,
                flushToDiskInterval: TimeSpan.FromSeconds(1));
        }
        return configuration.CreateLogger();
    }
}
