namespace Parley.Cli;

/// <summary>Where <c>parley</c> keeps per-user configuration: <c>$XDG_CONFIG_HOME/parley</c>, else <c>~/.config/parley</c>.</summary>
internal static class ConfigPaths
{
    public static string Root()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
        var root = string.IsNullOrWhiteSpace(xdg)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config")
            : xdg;
        return Path.Combine(root, "parley");
    }
}
