# frozen_string_literal: true

# Portus 2.4.3's LDAP sign-in and mailer, configured the way Portus configures them, from nothing but the
# environment: the rehearsal runs this with the PORTUS_* variables a rendered Portus container gets.
#
#   APP_CONFIG  as cconfig 1.2.1 builds it: every leaf of Portus's config/config.yml (its defaults are
#               vendored in tests/data/portus-2.4.3.yaml), overridden by PORTUS_<PATH> when that is set,
#               read as true/false, else Integer(), else the string (cconfig's HashUtils#get_env).
#   ldap-login  lib/portus/ldap/{adapter,connection,login}.rb: Net::LDAP options from APP_CONFIG["ldap"],
#               bind_as with the uid filter joined to ldap.filter under ldap.base, then guess_email.
#               Username as argument, password on standard input. Prints JSON.
#   smtp-send   lib/portus/mail.rb#smtp_settings and DeviseMailer's sender, delivered by the mail gem's
#               SMTP method as ActionMailer does. Recipient as argument. Prints JSON.
#
# Gems: net-ldap and mail (Debian: ruby-net-ldap, ruby-mail).

require "json"
require "yaml"
require "net/ldap"
require "mail"

DEFAULTS = File.expand_path("../data/portus-2.4.3.yaml", __dir__)

def env_value(name)
  value = ENV[name]
  return nil if value.nil?
  return true if value.casecmp("true").zero?
  return false if value.casecmp("false").zero?

  begin
    Integer(value)
  rescue ArgumentError
    value
  end
end

def app_config
  YAML.safe_load(File.read(DEFAULTS))["config_defaults"].each_with_object({}) do |(path, default), config|
    keys = path.split(".")
    parent = keys[0..-2].inject(config) { |node, key| node[key] ||= {} }
    value = env_value("PORTUS_#{keys.join('_').upcase}")
    parent[keys.last] = value.nil? ? default : value
  end
end

def blank?(value)
  value.nil? || (value.respond_to?(:empty?) && value.empty?)
end

def enabled?(config, feature)
  node = feature.split(".").inject(config) { |current, part| current.is_a?(Hash) ? current[part] : nil }
  node.is_a?(Hash) && node["enabled"].eql?(true)
end

# --- LDAP (lib/portus/ldap/adapter.rb) ---------------------------------------------------------------

def ldap_encryption(ldap)
  method = { "start_tls" => :start_tls, "simple_tls" => :simple_tls, "starttls" => :start_tls }[
    ldap["encryption"]["method"].to_s]
  return nil unless method

  options = ldap["encryption"]["options"]
  tls = if blank?(options) || blank?(options["ca_file"])
          OpenSSL::SSL::SSLContext::DEFAULT_PARAMS
        else
          { ca_file: options["ca_file"] }.tap do |opts|
            opts[:ssl_version] = options["ssl_version"] unless blank?(options["ssl_version"])
          end
        end
  { method: method, tls_options: tls }
end

def ldap_adapter(ldap)
  options = { host: ldap["hostname"], port: ldap["port"], connection_timeout: ldap["timeout"],
              encryption: ldap_encryption(ldap) }
  auth = ldap["authentication"]
  if auth && auth["enabled"]
    options[:auth] = { username: auth["bind_dn"], password: auth["password"], method: :simple }
  end
  Net::LDAP.new(options)
end

# lib/portus/ldap/connection.rb#search_options
def ldap_search_options(ldap, username)
  filter = Net::LDAP::Filter.equals(ldap["uid"], username)
  filter = Net::LDAP::Filter.join(filter, Net::LDAP::Filter.construct(ldap["filter"])) unless blank?(ldap["filter"])
  { filter: filter }.tap { |opts| opts[:base] = ldap["base"] unless ldap["base"].empty? }
end

# lib/portus/ldap/login.rb#guess_email
def ldap_guess_email(connection, ldap, username)
  guess = ldap["guess_email"]
  return nil if guess.nil? || !guess["enabled"]

  records = connection.search(ldap_search_options(ldap, username))
  return nil if records&.size != 1

  record = records.first
  if guess["attr"].empty?
    dcs = record["dn"].first.split(",").map { |part| part.split("=") }.select { |k, _| k == "dc" }.map(&:last)
    dcs.empty? ? nil : "#{username}@#{dcs.join('.')}"
  else
    value = record[guess["attr"]]
    value.is_a?(Array) ? value.first : value
  end
end

def ldap_login(username, password)
  config = app_config
  raise "LDAP is not enabled" unless enabled?(config, "ldap")

  ldap = config["ldap"]
  connection = ldap_adapter(ldap)
  result = { "health_bind" => connection.bind }
  entries = connection.bind_as(ldap_search_options(ldap, username).merge(password: password))
  result["bound"] = entries ? entries.first.dn : nil
  result["message"] = connection.get_operation_result.message
  result["email"] = ldap_guess_email(connection, ldap, username) if entries
  result
rescue Net::LDAP::Error => e
  { "error" => e.message }
end

# --- mail (lib/portus/mail.rb, app/mailers/devise_mailer.rb) -----------------------------------------

DEVISE_EMAIL = /\A[^@\s]+@[^@\s]+\z/.freeze

def smtp_settings(email)
  smtp = email["smtp"]
  return nil unless smtp["enabled"]

  settings = { address: smtp["address"], port: smtp["port"], domain: smtp["domain"],
               enable_starttls_auto: smtp["enable_starttls_auto"], openssl_verify_mode: smtp["openssl_verify_mode"] }
  settings[:ssl] = true if smtp["ssl_tls"] == "ssl"
  settings[:tls] = true if smtp["ssl_tls"] == "tls"
  settings[:ca_path] = smtp["ca_path"] if smtp["ca_path"]
  settings[:ca_file] = smtp["ca_file"] if smtp["ca_file"]
  unless blank?(smtp["user_name"])
    settings.update(user_name: smtp["user_name"], password: smtp["password"], authentication: smtp["authentication"])
  end
  settings
end

def smtp_send(recipient)
  email = app_config["email"]
  %w[from reply_to].each do |key|
    next if key == "reply_to" && blank?(email[key])
    raise "Mail: bad config value for '#{key}'" unless email[key].match?(DEVISE_EMAIL)
  end
  settings = smtp_settings(email)
  raise "SMTP is not enabled: Portus would use sendmail" unless settings

  message = Mail.new
  message.from = "#{email['name']} <#{email['from']}>"
  message.reply_to = email["reply_to"] unless blank?(email["reply_to"])
  message.to = recipient
  message.subject = "Reset password instructions"
  message.body = "Someone has requested a link to change your password."
  message.delivery_method(:smtp, settings)
  message.deliver!
  { "delivered" => true, "port" => settings[:port], "settings" => settings.keys.map(&:to_s).sort }
rescue StandardError => e
  { "error" => "#{e.class}: #{e.message}" }
end

command, argument = ARGV
result = case command
         when "ldap-login" then ldap_login(argument, $stdin.read)
         when "smtp-send" then smtp_send(argument)
         else abort("usage: #{$PROGRAM_NAME} ldap-login USERNAME | smtp-send RECIPIENT")
         end
puts JSON.generate(result)
