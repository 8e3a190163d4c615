# First-run setup of Portus without the web UI, run with `rails runner` by the bootstrap Job:
# the first administrator, then the registry record with its in-cluster `hostname` and the public
# `external_hostname` that Docker clients use. Running it again with the same inputs changes nothing.

def setting(name)
  value = ENV.fetch(name, "")
  abort("bootstrap: #{name} is not set") if value.empty?
  value
end

admin_username = setting("BOOTSTRAP_ADMIN_USERNAME")
admin_email = setting("BOOTSTRAP_ADMIN_EMAIL")
admin_password = setting("BOOTSTRAP_ADMIN_PASSWORD")
wanted_registry = {
  name: setting("BOOTSTRAP_REGISTRY_NAME"),
  hostname: setting("BOOTSTRAP_REGISTRY_HOSTNAME"),
  use_ssl: true,
  external_hostname: setting("BOOTSTRAP_REGISTRY_EXTERNAL_HOSTNAME")
}

changes = []
ActiveRecord::Base.transaction do
  # The administrator first: creating the registry makes every administrator an owner of its
  # global namespace. An existing account keeps its password (it may have been changed in the UI).
  admin = User.find_by(username: admin_username)
  if admin.nil?
    User.create!(username: admin_username, email: admin_email, password: admin_password, admin: true)
    changes << "created administrator #{admin_username}"
  elsif !admin.admin?
    admin.toggle_admin!
    changes << "made #{admin_username} an administrator"
  end

  # Portus serves exactly one registry.
  registry = Registry.first
  if registry.nil?
    Registry.create!(wanted_registry)
    changes << "registered #{wanted_registry[:hostname]} as #{wanted_registry[:external_hostname]}"
  else
    stale = wanted_registry.reject { |field, value| registry.public_send(field) == value }
    unless stale.empty?
      registry.update!(stale)
      changes << "updated registry #{stale.keys.join(', ')}"
    end
  end
end

puts(changes.empty? ? "bootstrap: already up to date" : "bootstrap: #{changes.join('; ')}")
